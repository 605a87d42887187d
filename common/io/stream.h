// Byte streams: the one streaming abstraction the rest of deltasync uses.
//
// A ByteSource yields bytes until it returns 0 (end of stream); a ByteSink
// accepts bytes and is finished explicitly, which is where buffered sinks
// flush and verifying sinks compare digests. Layers of several GiB flow
// through chains of these (file -> gunzip -> tar splitter -> hasher) with a
// fixed-size buffer at each step, so memory never grows with data size.
//
// Ownership: adapters hold a reference (not ownership) to the stream they
// wrap unless their constructor takes a unique_ptr. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/util/result.h"

namespace deltasync {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to buffer.size() bytes; returns how many, 0 only at end of stream.
  virtual Result<size_t> read(std::span<char> buffer) = 0;
};

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status write(std::string_view data) = 0;
  // Flushes and validates; call once after the last write.
  virtual Status finish() { return ok_status(); }
};

// Fills the whole buffer or fails with kCorrupt "truncated" naming `what`.
Status read_exact(ByteSource& source, std::span<char> buffer, std::string_view what);
// Reads until the buffer is full or the stream ends; returns the count.
Result<size_t> read_full(ByteSource& source, std::span<char> buffer);
// Copies exactly `count` bytes; a short source is kCorrupt "truncated".
Status copy_exact(ByteSource& source, ByteSink& sink, uint64_t count, std::string_view what);
// Copies to end of stream; returns the number of bytes copied.
Result<uint64_t> copy_all(ByteSource& source, ByteSink& sink);
// Reads and discards exactly `count` bytes.
Status skip_exact(ByteSource& source, uint64_t count, std::string_view what);
// Reads a whole stream into memory, failing if it exceeds `limit` bytes.
Result<std::string> read_all(ByteSource& source, size_t limit);

// A source over bytes in memory (the view must outlive the source).
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view data) : data_(data) {}
  Result<size_t> read(std::span<char> buffer) override;

 private:
  std::string_view data_;
};

// Reads at most `limit` bytes of another source, then reports end of stream.
class LimitedSource final : public ByteSource {
 public:
  LimitedSource(ByteSource& inner, uint64_t limit) : inner_(inner), remaining_(limit) {}
  Result<size_t> read(std::span<char> buffer) override;
  uint64_t remaining() const { return remaining_; }

 private:
  ByteSource& inner_;
  uint64_t remaining_;
};

// Appends everything to a string.
class StringSink final : public ByteSink {
 public:
  Status write(std::string_view data) override {
    data_.append(data);
    return ok_status();
  }
  std::string& data() { return data_; }

 private:
  std::string data_;
};

// Discards and counts.
class CountingSink final : public ByteSink {
 public:
  Status write(std::string_view data) override {
    count_ += data.size();
    return ok_status();
  }
  uint64_t count() const { return count_; }

 private:
  uint64_t count_ = 0;
};

// Counts bytes passing through to another sink.
class TeeCountSink final : public ByteSink {
 public:
  explicit TeeCountSink(ByteSink& inner) : inner_(inner) {}
  Status write(std::string_view data) override {
    count_ += data.size();
    return inner_.write(data);
  }
  Status finish() override { return inner_.finish(); }
  uint64_t count() const { return count_; }

 private:
  ByteSink& inner_;
  uint64_t count_ = 0;
};

// Collects writes into blocks of `block_size` before passing them on, so
// that many small writes (tar headers) become few large ones.
class BufferedSink final : public ByteSink {
 public:
  BufferedSink(ByteSink& inner, size_t block_size = 1 << 20);
  Status write(std::string_view data) override;
  Status flush();
  Status finish() override;

 private:
  ByteSink& inner_;
  std::string buffer_;
  size_t block_size_;
};

constexpr size_t kIoChunk = 1 << 20;  // 1 MiB: the copy buffer size everywhere

}  // namespace deltasync

namespace deltasync {

// Reads its inner source in large blocks so that small reads (tar headers)
// do not each become a system call or a decompressor call.
class BufferedSource final : public ByteSource {
 public:
  BufferedSource(ByteSource& inner, size_t block_size = 256 * 1024)
      : inner_(inner), buffer_(block_size, '\0') {}
  Result<size_t> read(std::span<char> buffer) override;

 private:
  ByteSource& inner_;
  std::string buffer_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace deltasync
