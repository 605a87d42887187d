#include "sender/diffimage/header_edit.h"

#include <cstring>
#include <map>

#include "common/tar/tar_entry.h"

namespace deltasync {

namespace {

constexpr size_t kSizeOffset = 124, kSizeLength = 12;
constexpr size_t kChecksumOffset = 148, kChecksumLength = 8;
constexpr size_t kTypeOffset = 156;
constexpr size_t kLinkOffset = 157, kLinkLength = 100;

constexpr uint64_t kMaxOctalSize = (uint64_t{1} << 33) - 1;  // 11 octal digits

void put_octal(std::string& block, size_t offset, size_t length, uint64_t value) {
  for (size_t i = length - 1; i-- > 0;) {
    block[offset + i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  block[offset + length - 1] = '\0';
}

void set_checksum(std::string& block) {
  std::memset(block.data() + kChecksumOffset, ' ', kChecksumLength);
  uint64_t sum = 0;
  for (char c : block) sum += static_cast<uint8_t>(c);
  put_octal(block, kChecksumOffset, 7, sum);
  block[kChecksumOffset + 7] = ' ';
}

std::string pax_record(const std::string& key, const std::string& value) {
  size_t base = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t len = base + 1;
  while (std::to_string(len).size() + base != len) ++len;
  return std::to_string(len) + " " + key + "=" + value + "\n";
}

// An extension header block carrying `records` (`model`: a header whose
// other fields are kept, or empty for a fresh one).
std::string pax_block(std::string model, const std::map<std::string, std::string>& records,
                      std::string* data) {
  data->clear();
  for (const auto& [k, v] : records) *data += pax_record(k, v);
  if (model.empty()) {
    model.assign(kTarBlock, '\0');
    std::memcpy(model.data(), "PaxHeader", 9);
    put_octal(model, 100, 8, 0644);
    put_octal(model, 108, 8, 0);
    put_octal(model, 116, 8, 0);
    put_octal(model, 136, 12, 0);
    std::memcpy(model.data() + 257,
                "ustar\0"
                "00",
                8);
  }
  model[kTypeOffset] = 'x';
  put_octal(model, kSizeOffset, kSizeLength, data->size());
  set_checksum(model);
  return model;
}

}  // namespace

Result<std::string> retype_tar_header(std::string_view raw, char type, uint64_t size,
                                      std::string_view link_target) {
  if (type != '0' && type != '1') {
    return make_error(ErrorCode::kInternal, "retype_tar_header: type must be '0' or '1'");
  }
  if (raw.empty() || raw.size() % kTarBlock != 0) {
    return make_error(ErrorCode::kCorrupt, "tar header to rewrite is not whole blocks");
  }
  // The records the new entry needs beyond the ustar fields.
  std::map<std::string, std::string> wanted;
  bool long_link = type == '1' && link_target.size() >= kLinkLength;
  bool big_size = type == '0' && size > kMaxOctalSize;
  if (long_link) wanted["linkpath"] = std::string(link_target);
  if (big_size) wanted["size"] = std::to_string(size);

  std::string out;
  bool pax_written = false;
  std::string_view rest = raw;
  while (rest.size() > kTarBlock) {
    std::string_view block = rest.substr(0, kTarBlock);
    char ext = block[kTypeOffset];
    DS_ASSIGN_OR_RETURN(uint64_t ext_size,
                        parse_tar_number(block.substr(kSizeOffset, kSizeLength), "size"));
    uint64_t total = kTarBlock + ext_size + tar_padding(ext_size);
    if (total > rest.size()) {
      return make_error(ErrorCode::kCorrupt, "tar header to rewrite: extension data is cut");
    }
    std::string_view data = rest.substr(kTarBlock, ext_size);
    if (ext == 'x') {
      DS_ASSIGN_OR_RETURN(auto records, parse_pax_records(data));
      records.erase("linkpath");
      records.erase("size");
      if (!pax_written) {
        for (const auto& [k, v] : wanted) records[k] = v;
      }
      if (!records.empty()) {
        std::string new_data;
        out += pax_block(std::string(block), records, &new_data);
        out += new_data;
        out.append(tar_padding(new_data.size()), '\0');
      }
      pax_written = true;
    } else if (ext != 'K') {
      out.append(rest.substr(0, total));
    }
    rest.remove_prefix(total);
  }
  if (rest.size() != kTarBlock) {
    return make_error(ErrorCode::kCorrupt, "tar header to rewrite has no main header block");
  }
  if (!pax_written && !wanted.empty()) {
    std::string new_data;
    out += pax_block("", wanted, &new_data);
    out += new_data;
    out.append(tar_padding(new_data.size()), '\0');
  }
  std::string main(rest);
  main[kTypeOffset] = type;
  put_octal(main, kSizeOffset, kSizeLength, type == '0' && !big_size ? size : 0);
  std::memset(main.data() + kLinkOffset, 0, kLinkLength);
  if (type == '1' && !long_link) {
    std::memcpy(main.data() + kLinkOffset, link_target.data(), link_target.size());
  }
  set_checksum(main);
  out += main;
  return out;
}

}  // namespace deltasync
