// Stream (de)compression: gzip (zlib) and zstd behind our stream types.
//
// Layer blobs in image archives may be plain tar, gzip or zstd; open_decompressed()
// sniffs the magic bytes and returns a source of the plain bytes. Only
// gzip.cpp includes <zlib.h> and only zstd.cpp includes <zstd.h>.
// Decompressors bound their output only by the consumer: callers that accept
// untrusted input pair them with a LimitedSource or a size check.
//
// Thread safety: none; one owner per object.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/io/stream.h"

namespace deltasync {

enum class Compression { kNone, kGzip, kZstd };

std::string_view compression_name(Compression c);
// Looks at the first bytes of a stream.
Compression detect_compression(std::string_view head);

// Decompresses gzip (including concatenated members).
std::unique_ptr<ByteSource> make_gunzip_source(std::unique_ptr<ByteSource> inner, std::string name);
// Decompresses zstd (including concatenated frames).
std::unique_ptr<ByteSource> make_unzstd_source(std::unique_ptr<ByteSource> inner, std::string name);

// Returns a source of plain bytes, detecting gzip or zstd by their magic.
Result<std::unique_ptr<ByteSource>> open_decompressed(std::unique_ptr<ByteSource> inner,
                                                      std::string name,
                                                      Compression* detected = nullptr);

// Compressing sinks: write plain bytes, the compressed stream goes to `out`.
std::unique_ptr<ByteSink> make_gzip_sink(ByteSink& out, int level);
std::unique_ptr<ByteSink> make_zstd_sink(ByteSink& out, int level, int threads = 0);

// zstd with a prefix dictionary (raw content both sides hold, e.g. the basis
// image's tar headers): matches into it cost a few bits instead of the bytes.
// The prefix must stay alive and unchanged for the life of the sink/source.
// window_log 0 picks one that covers the prefix.
struct ZstdPrefixOptions {
  int level = 3;
  int window_log = 0;
  bool long_distance_matching = false;
  bool checksum = true;
};
std::unique_ptr<ByteSink> make_zstd_prefix_sink(ByteSink& out, std::string_view prefix,
                                                const ZstdPrefixOptions& options);
std::unique_ptr<ByteSource> make_unzstd_prefix_source(std::unique_ptr<ByteSource> inner,
                                                      std::string name, std::string_view prefix);

// One-shot helpers for small buffers.
Result<std::string> zstd_compress(std::string_view data, int level);
Result<std::string> zstd_decompress(std::string_view data, size_t max_size);
// One-shot with a prefix dictionary both sides hold.
Result<std::string> zstd_compress_with_prefix(std::string_view data, std::string_view prefix,
                                              int level);
Result<std::string> zstd_decompress_with_prefix(std::string_view data, std::string_view prefix,
                                                size_t max_size);
// The same with every option; the window covers prefix + data unless set.
Result<std::string> zstd_compress_with_prefix(std::string_view data, std::string_view prefix,
                                              const ZstdPrefixOptions& options);

}  // namespace deltasync
