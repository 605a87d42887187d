// A SignatureAsk as a SignatureRequest item carries it, and back: the one
// place both ends read and write the ranges (pairs of gap after the previous
// range's end, then length; docs/protocol.md "Signature rounds").
//
// Thread safety: reentrant.
#pragma once

#include <cstdint>

#include "common/delta/signature_rounds.h"
#include "proto/deltasync.pb.h"

namespace deltasync {

// Fills the item's block_len, strong_len and ranges (not its content_id or
// target_size).
void put_signature_ask(const SignatureAsk& ask, wire::SignatureRequest::Item& item);

// The ask an item from a peer makes of a basis file of `basis_size` bytes:
// its ranges, or, when it names no block size, the whole file at the
// one-round block size (whole_file_ask). kProtocol when the ranges are
// malformed or the ask fails check_signature_ask.
Result<SignatureAsk> signature_ask_of(const wire::SignatureRequest::Item& item,
                                      uint64_t basis_size);

}  // namespace deltasync
