// The image model: what an image is to deltasync, wherever it comes from.
//
// An image is its config (JSON bytes whose sha256 is the image ID), an
// ordered list of layers identified by diff_id (sha256 of the uncompressed
// layer tar), and the tags it carries. ImageReader opens one from the engine
// or from a file named with skopeo's transports:
//   app:2.0.0, sha256:<id>         an image in the local engine
//   docker-archive:PATH             `docker save` output (legacy or OCI-in-tar)
//   oci-archive:PATH                an OCI image layout in a tar
//   oci:DIR[:REF]                   an OCI image layout directory
// Layer blobs may be uncompressed, gzip or zstd; open_layer() always yields
// the uncompressed tar and fails at its end unless it hashes to the diff_id.
//
// Ownership: an ImageReader owns whatever it opened (archive descriptor; an
// engine export goes to a temp file under default_temp_parent() that is
// unlinked as soon as it is created, so it vanishes with the reader or the
// process). Layer sources borrow the reader and must not outlive it.
// Not thread-safe; open one reader per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/image/distribution.h"
#include "common/image/oci_layout_writer.h"
#include "common/io/stream.h"

namespace deltasync {

class EngineClient;

struct ImageRef {
  enum class Transport { kEngine, kDockerArchive, kOciArchive, kOciDir };
  Transport transport = Transport::kEngine;
  std::string location;  // engine reference/ID, or file/directory path
  // Optional selector after PATH/DIR (oci:DIR:REF, docker-archive:PATH:REF):
  // picks one image by ref name / tag when the archive holds several.
  std::string oci_ref;
  std::string original;  // as the user wrote it
  // "os/arch[/variant]" (--platform): which image of a multi-platform index;
  // empty: this host's, as the engine chooses.
  std::string platform;

  static Result<ImageRef> parse(const std::string& text);
  bool is_engine() const { return transport == Transport::kEngine; }
};

struct LayerInfo {
  Digest diff_id;
  uint64_t blob_size = 0;  // bytes in the archive (compressed size if compressed)
  std::string blob_name;   // member path in the archive / directory
};

struct ImageInfo {
  std::string config_bytes;  // exact bytes; sha256 is the image ID
  Digest image_id;           // sha256 of config_bytes
  std::vector<LayerInfo> layers;
  std::vector<std::string> tags;  // "repo:tag" references carried by the image
  std::string os;
  std::string architecture;
  // Read from an OCI layout (Docker's containerd store, oci-archive:,
  // oci:) that holds this image's manifest; recipes are filled in only by
  // find_blob_recipes() (blob_recipes.h).
  std::optional<DistributionIdentity> distribution;
  // For an image read from an engine: that engine's Id of it (the config
  // digest, or the index/manifest digest on the containerd store).
  std::string engine_id;

  std::vector<Digest> diff_ids() const;
};

class ImageReader {
 public:
  virtual ~ImageReader() = default;
  virtual const ImageInfo& info() const = 0;
  // Uncompressed layer tar i; verified against its diff_id at end of stream.
  virtual Result<std::unique_ptr<ByteSource>> open_layer(size_t index) = 0;
  // Layer i's blob as stored (compressed or not), unverified.
  virtual Result<std::unique_ptr<ByteSource>> open_blob(size_t index) = 0;
  // Where the image came from, for messages.
  virtual std::string describe() const = 0;
};

// Opens an image. `engine` is used for engine references (may be null when
// the reference is a file; then an engine reference is an error).
Result<std::unique_ptr<ImageReader>> open_image(const ImageRef& ref, EngineClient* engine);

// Writes a docker-archive (the legacy `docker save` layout: manifest.json,
// <config-hex>.json, <diffid-hex>/layer.tar) that `docker load` accepts.
// Layers are added in the order of the config's rootfs.diff_ids with their
// exact size; the writer streams them to `out` and checks each against its
// diff_id as it goes, so a wrong layer fails add_layer() and the archive is
// never completed (no manifest.json: `docker load` rejects it).
//
// Ownership: borrows `out` (not finished by the writer; the caller finishes
// it after finish()). Not thread-safe.
class DockerArchiveWriter {
 public:
  DockerArchiveWriter(ByteSink& out, std::string config_bytes, std::vector<std::string> tags);
  // Adds the next layer (uncompressed tar of `size` bytes from `content`).
  // kInvalidArgument if it is not the next diff_id of the config; kVerifyFailed
  // if the content does not hash to it. A diff_id already written (an image
  // may repeat a layer) is referenced again and `content` is not read.
  Status add_layer(const Digest& diff_id, uint64_t size, ByteSource& content);
  // Lists the next layer in manifest.json without its content: for a load
  // into an engine that already holds this layer chain. Docker's load reads a
  // layer's file only when the layer is missing; Podman's needs every listed
  // file to exist but reuses a stored layer by its diff_id without reading
  // it. So finish() writes an empty placeholder file for each layer that was
  // only skipped; an engine that lacks the layer after all fails its diff_id
  // check on it and loads nothing.
  Status skip_layer(const Digest& diff_id);
  // Writes manifest.json and the end of the archive; fails unless every
  // layer of the config was added.
  Status finish();

 private:
  Status start();
  Status write_member(const std::string& path, std::string_view data);
  // The "<diffid-hex>/" directory and "<diffid-hex>/layer.tar" headers.
  Status write_layer_header(const Digest& diff_id, uint64_t size);

  ByteSink& out_;
  std::string config_bytes_;
  std::vector<std::string> tags_;
  std::vector<Digest> expected_diff_ids_;
  std::vector<std::string> layer_paths_;
  std::vector<Digest> written_;  // layers whose content is in the archive
  int64_t mtime_ = 0;
  bool config_written_ = false;
  bool failed_ = false;
  bool finished_ = false;
};

}  // namespace deltasync

namespace deltasync {

// Writes an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/)
// for engines whose load builds the image from the archive's own manifest:
// Docker's containerd image store takes the manifest as written, so its
// image ID is the digest of that manifest, which this writer knows before
// any byte is streamed (manifest_digest()). Layers are uncompressed
// (application/vnd.oci.image.layer.v1.tar, digest = diff_id), so every blob
// digest is checked as it streams and the manifest is deterministic: the same
// config and layers give the same digest on every site. Every layer of the
// config must be added (that store rejects an archive that lacks a blob);
// blobs go first, the manifest and index.json last, so layers stream as they
// arrive. Tags become io.containerd.image.name annotations (qualified).
//
// Ownership: borrows `out` (not finished here). Not thread-safe.
class OciArchiveWriter {
 public:
  struct LayerSize {
    Digest diff_id;
    uint64_t size = 0;
  };
  // kCorrupt if the config is not valid or `layers` differs from its diff_ids.
  static Result<std::unique_ptr<OciArchiveWriter>> create(ByteSink& out, std::string config_bytes,
                                                          const std::vector<LayerSize>& layers,
                                                          std::vector<std::string> tags);
  const Digest& manifest_digest() const { return manifest_digest_; }
  // The next layer; its content must hash to its diff_id (kVerifyFailed).
  Status add_layer(const Digest& diff_id, uint64_t size, ByteSource& content);
  // The next layer is named by the manifest but left out of the archive:
  // only for an engine whose load reuses the blobs it holds
  // (EngineInfo::load_reuses_blobs, containerd).
  Status skip_layer(const Digest& diff_id);
  Status finish();

 private:
  OciArchiveWriter(ByteSink& out, std::string config_bytes, std::vector<LayerSize> layers,
                   std::vector<std::string> tags, std::string manifest);
  OciLayoutWriter layout_;  // the tar members: blobs checked as they stream, index.json
  std::string config_bytes_;
  std::vector<LayerSize> layers_;
  std::vector<std::string> tags_;
  std::string manifest_;
  Digest manifest_digest_;
  size_t next_ = 0;
  bool started_ = false;
  bool failed_ = false;
};

}  // namespace deltasync
