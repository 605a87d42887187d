// SignatureAsk <-> SignatureRequest.Item (see signature_ask_codec.h).
#include "common/protocol/signature_ask_codec.h"

namespace deltasync {

void put_signature_ask(const SignatureAsk& ask, wire::SignatureRequest::Item& item) {
  item.set_block_len(ask.params.block_len);
  item.set_strong_len(ask.params.strong_len);
  uint64_t at = 0;
  for (const ByteRange& r : ask.ranges) {
    item.add_ranges(r.offset - at);
    item.add_ranges(r.length);
    at = r.offset + r.length;
  }
}

Result<SignatureAsk> signature_ask_of(const wire::SignatureRequest::Item& item,
                                      uint64_t basis_size) {
  if (item.block_len() == 0) return whole_file_ask(basis_size, item.target_size());
  if (item.ranges_size() % 2 != 0 ||
      static_cast<size_t>(item.ranges_size()) / 2 > kMaxSignatureRanges)
    return make_error(ErrorCode::kProtocol, "SignatureRequest: malformed ranges");
  SignatureAsk ask;
  ask.params = SignatureParams{item.block_len(), item.strong_len()};
  uint64_t at = 0;
  for (int i = 0; i < item.ranges_size(); i += 2) {
    uint64_t gap = item.ranges(i), length = item.ranges(i + 1);
    if (gap > basis_size || length > basis_size || at > basis_size - gap)
      return make_error(ErrorCode::kProtocol, "SignatureRequest: range outside the file");
    ask.ranges.push_back({at + gap, length});
    at += gap + length;
  }
  DS_RETURN_IF_ERROR(check_signature_ask(ask, basis_size));
  return ask;
}

}  // namespace deltasync
