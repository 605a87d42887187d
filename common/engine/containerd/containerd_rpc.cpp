// containerd's services as synchronous gRPC calls; see containerd_rpc.h.
//
// The content Write stream follows containerd's own remote writer: one
// request per chunk (WRITE, with total and expected digest on the first) and
// a response read for each, then COMMIT with the labels. The ref is unique
// per write (pid, counter), so two loads of one blob never lock each other;
// the loser's commit answers AlreadyExists, which is what it wanted.
#include "common/engine/containerd/containerd_rpc.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>

#include <grpcpp/grpcpp.h>

#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.grpc.pb.h"

namespace deltasync::containerd_rpc {

namespace content = ::containerd::services::content::v1;
namespace images = ::containerd::services::images::v1;
namespace leases = ::containerd::services::leases::v1;
namespace snapshots = ::containerd::services::snapshots::v1;
namespace diff = ::containerd::services::diff::v1;
namespace version = ::containerd::services::version::v1;

namespace {

constexpr size_t kChunk = 1 << 20;  // under containerd's 16 MiB message limit
constexpr int64_t kBytesPerDeadline = 64ll << 20;

Descriptor from_proto(const ::containerd::types::Descriptor& d) {
  Descriptor out;
  out.media_type = d.media_type();
  out.digest = d.digest();
  out.size = d.size();
  for (const auto& [k, v] : d.annotations()) out.annotations[k] = v;
  return out;
}

void to_proto(const Descriptor& d, ::containerd::types::Descriptor* out) {
  out->set_media_type(d.media_type);
  out->set_digest(d.digest);
  out->set_size(d.size);
  for (const auto& [k, v] : d.annotations) (*out->mutable_annotations())[k] = v;
}

ImageRecord from_proto(const images::Image& image) {
  ImageRecord out;
  out.name = image.name();
  out.target = from_proto(image.target());
  for (const auto& [k, v] : image.labels()) out.labels[k] = v;
  out.created_seconds = image.created_at().seconds();
  return out;
}

}  // namespace

struct ContainerdRpc::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<content::Content::Stub> content;
  std::unique_ptr<images::Images::Stub> images;
  std::unique_ptr<leases::Leases::Stub> leases;
  std::unique_ptr<snapshots::Snapshots::Stub> snapshots;
  std::unique_ptr<diff::Diff::Stub> diff;
  std::unique_ptr<version::Version::Stub> version;
  std::string lease;
};

ContainerdRpc::ContainerdRpc(EngineOptions options, engine_detail::ContainerdAddress address)
    : options_(std::move(options)), parsed_(std::move(address)), impl_(std::make_unique<Impl>()) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  // containerd's socket answers any authority; a fixed one keeps gRPC from
  // putting the socket path in the :authority header.
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
  impl_->channel = grpc::CreateCustomChannel("unix://" + parsed_.socket,
                                             grpc::InsecureChannelCredentials(), args);
  impl_->content = content::Content::NewStub(impl_->channel);
  impl_->images = images::Images::NewStub(impl_->channel);
  impl_->leases = leases::Leases::NewStub(impl_->channel);
  impl_->snapshots = snapshots::Snapshots::NewStub(impl_->channel);
  impl_->diff = diff::Diff::NewStub(impl_->channel);
  impl_->version = version::Version::NewStub(impl_->channel);
}

ContainerdRpc::~ContainerdRpc() {
  if (!impl_->lease.empty()) (void)end_lease();
}

namespace {

// A context with the namespace, the lease and a deadline.
std::unique_ptr<grpc::ClientContext> make_context(const engine_detail::ContainerdAddress& parsed,
                                                  const std::string& lease,
                                                  std::chrono::seconds timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("containerd-namespace", parsed.name_space);
  if (!lease.empty()) context->AddMetadata("containerd-lease", lease);
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

Error to_error(const grpc::Status& status, const std::string& address, const std::string& what) {
  const std::string detail = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return Error(ErrorCode::kUnavailable,
                   "cannot reach containerd at " + address + " (" + what + "): " + detail +
                       " (is containerd running? k3s's socket is "
                       "/run/k3s/containerd/containerd.sock; set --engine)");
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Error(ErrorCode::kTimeout,
                   "containerd at " + address + " did not answer in time (" + what + ")");
    case grpc::StatusCode::NOT_FOUND:
      return Error(ErrorCode::kNotFound, what + ": " + detail + " (containerd at " + address + ")");
    case grpc::StatusCode::CANCELLED:
      return Error(ErrorCode::kCancelled, what + ": cancelled");
    case grpc::StatusCode::FAILED_PRECONDITION:
      if (detail.find("unexpected commit digest") != std::string::npos ||
          detail.find("unexpected commit size") != std::string::npos)
        return Error(ErrorCode::kVerifyFailed,
                     what + ": containerd at " + address + " refused the blob: " + detail);
      [[fallthrough]];
    default:
      return Error(ErrorCode::kEngine,
                   "containerd at " + address + " refused " + what + ": " + detail);
  }
}

std::chrono::seconds stream_timeout(std::chrono::seconds base, int64_t bytes) {
  return base * std::max<int64_t>(1, (bytes + kBytesPerDeadline - 1) / kBytesPerDeadline);
}

}  // namespace

#define DS_GRPC_CALL(stub, method, request, response, what)                               \
  do {                                                                                    \
    auto context_ = make_context(parsed_, impl_->lease, options_.io_timeout);             \
    grpc::Status status_ = impl_->stub->method(context_.get(), request, &(response));     \
    if (!status_.ok()) return std::unexpected(to_error(status_, options_.address, what)); \
  } while (false)

Result<std::pair<std::string, std::string>> ContainerdRpc::version() {
  google::protobuf::Empty request;
  version::VersionResponse response;
  DS_GRPC_CALL(version, Version, request, response, "the version request");
  return std::make_pair(response.version(), response.revision());
}

Result<ContentInfo> ContainerdRpc::content_info(const std::string& digest) {
  content::InfoRequest request;
  request.set_digest(digest);
  content::InfoResponse response;
  DS_GRPC_CALL(content, Info, request, response, "blob " + digest);
  ContentInfo info;
  info.digest = response.info().digest();
  info.size = response.info().size();
  for (const auto& [k, v] : response.info().labels()) info.labels[k] = v;
  return info;
}

namespace {

// content Read as a ByteSource: the chunks of the server stream, in order.
class BlobSource final : public ByteSource {
 public:
  BlobSource(std::unique_ptr<grpc::ClientContext> context, content::Content::Stub& stub,
             const std::string& digest, int64_t size, std::string address)
      : context_(std::move(context)), digest_(digest), size_(size), address_(std::move(address)) {
    content::ReadContentRequest request;
    request.set_digest(digest);
    reader_ = stub.Read(context_.get(), request);
  }
  ~BlobSource() override {
    if (!finished_) {
      context_->TryCancel();
      (void)reader_->Finish();
    }
  }

  Result<size_t> read(std::span<char> buffer) override {
    while (pos_ == chunk_.data().size()) {
      if (finished_) return size_t{0};
      if (!reader_->Read(&chunk_)) {
        finished_ = true;
        grpc::Status status = reader_->Finish();
        if (!status.ok()) return std::unexpected(to_error(status, address_, "reading " + digest_));
        if (size_ >= 0 && got_ != size_)
          return make_error(ErrorCode::kCorrupt, "blob " + digest_ + " in containerd at " +
                                                     address_ + " has " + std::to_string(got_) +
                                                     " bytes, its descriptor says " +
                                                     std::to_string(size_));
        return size_t{0};
      }
      if (chunk_.offset() != got_)
        return make_error(ErrorCode::kProtocol,
                          "containerd at " + address_ + " sent blob " + digest_ + " out of order");
      got_ += static_cast<int64_t>(chunk_.data().size());
      pos_ = 0;
    }
    size_t n = std::min(buffer.size(), chunk_.data().size() - pos_);
    std::memcpy(buffer.data(), chunk_.data().data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<content::ReadContentResponse>> reader_;
  content::ReadContentResponse chunk_;
  size_t pos_ = 0;
  std::string digest_;
  int64_t size_;
  int64_t got_ = 0;
  std::string address_;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<ByteSource> ContainerdRpc::open_blob(const std::string& digest, int64_t size) {
  return std::make_unique<BlobSource>(
      make_context(parsed_, impl_->lease, stream_timeout(options_.io_timeout, size)),
      *impl_->content, digest, size, options_.address);
}

Result<std::string> ContainerdRpc::read_small_blob(const std::string& digest, int64_t limit) {
  DS_ASSIGN_OR_RETURN(ContentInfo info, content_info(digest));
  if (info.size > limit)
    return make_error(ErrorCode::kCorrupt,
                      "blob " + digest + " in containerd at " + options_.address + " is " +
                          std::to_string(info.size) + " bytes, too large for a document");
  auto source = open_blob(digest, info.size);
  return read_all(*source, static_cast<size_t>(limit));
}

Status ContainerdRpc::write_blob(const std::string& digest, int64_t size, ByteSource& source,
                                 const std::map<std::string, std::string>& labels) {
  static std::atomic<uint64_t> counter{0};
  const std::string ref = "deltasync-" + std::to_string(::getpid()) + "-" +
                          std::to_string(counter.fetch_add(1)) + "-" + digest;
  auto context = make_context(parsed_, impl_->lease, stream_timeout(options_.io_timeout, size));
  auto stream = impl_->content->Write(context.get());
  content::WriteContentResponse response;
  std::string buffer(kChunk, '\0');
  int64_t offset = 0;
  Status failure = ok_status();
  bool first = true;
  for (;;) {
    auto n = read_full(source, std::span<char>(buffer.data(), buffer.size()));
    if (!n) {
      failure = std::unexpected(n.error());
      break;
    }
    const bool last = offset + static_cast<int64_t>(*n) >= size || *n < buffer.size();
    content::WriteContentRequest request;
    request.set_action(last ? content::COMMIT : content::WRITE);
    request.set_ref(ref);
    request.set_offset(offset);
    if (first || last) {
      request.set_total(size);
      request.set_expected(digest);
    }
    request.set_data(buffer.data(), *n);
    if (last)
      for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
    first = false;
    if (!stream->Write(request) || !stream->Read(&response)) break;  // Finish says why
    offset += static_cast<int64_t>(*n);
    if (last) break;
  }
  if (!failure) context->TryCancel();
  stream->WritesDone();
  // containerd sends the last response twice (once more from a deferred
  // send); Finish() would wait for unread messages, so read them.
  while (stream->Read(&response)) {
  }
  grpc::Status status = stream->Finish();
  if (!failure) {
    content::AbortRequest abort;
    abort.set_ref(ref);
    google::protobuf::Empty empty;
    auto abort_context = make_context(parsed_, impl_->lease, options_.io_timeout);
    (void)impl_->content->Abort(abort_context.get(), abort, &empty);
    return failure;
  }
  if (status.error_code() == grpc::StatusCode::ALREADY_EXISTS) return ok_status();
  if (!status.ok())
    return std::unexpected(to_error(status, options_.address, "writing blob " + digest));
  if (offset != size)
    return make_error(ErrorCode::kCorrupt, "blob " + digest + ": the archive held " +
                                               std::to_string(offset) + " of its " +
                                               std::to_string(size) + " bytes");
  return ok_status();
}

Status ContainerdRpc::set_content_labels(const std::string& digest,
                                         const std::map<std::string, std::string>& labels) {
  if (labels.empty()) return ok_status();
  content::UpdateRequest request;
  request.mutable_info()->set_digest(digest);
  for (const auto& [k, v] : labels) {
    (*request.mutable_info()->mutable_labels())[k] = v;
    request.mutable_update_mask()->add_paths("labels." + k);
  }
  content::UpdateResponse response;
  DS_GRPC_CALL(content, Update, request, response, "labelling blob " + digest);
  return ok_status();
}

Result<ImageRecord> ContainerdRpc::get_image(const std::string& name) {
  images::GetImageRequest request;
  request.set_name(name);
  images::GetImageResponse response;
  DS_GRPC_CALL(images, Get, request, response, "image " + name);
  return from_proto(response.image());
}

Result<std::vector<ImageRecord>> ContainerdRpc::list_images() {
  images::ListImagesRequest request;
  images::ListImagesResponse response;
  DS_GRPC_CALL(images, List, request, response, "the image list");
  std::vector<ImageRecord> out;
  for (const auto& image : response.images()) out.push_back(from_proto(image));
  return out;
}

Status ContainerdRpc::put_image(const ImageRecord& image) {
  images::Image proto;
  proto.set_name(image.name);
  to_proto(image.target, proto.mutable_target());
  for (const auto& [k, v] : image.labels) (*proto.mutable_labels())[k] = v;
  {
    images::CreateImageRequest request;
    *request.mutable_image() = proto;
    images::CreateImageResponse response;
    auto context = make_context(parsed_, impl_->lease, options_.io_timeout);
    grpc::Status status = impl_->images->Create(context.get(), request, &response);
    if (status.ok()) return ok_status();
    if (status.error_code() != grpc::StatusCode::ALREADY_EXISTS)
      return std::unexpected(to_error(status, options_.address, "creating image " + image.name));
  }
  images::UpdateImageRequest request;
  *request.mutable_image() = proto;
  request.mutable_update_mask()->add_paths("target");
  for (const auto& [k, v] : image.labels) request.mutable_update_mask()->add_paths("labels." + k);
  images::UpdateImageResponse response;
  DS_GRPC_CALL(images, Update, request, response, "updating image " + image.name);
  return ok_status();
}

Status ContainerdRpc::delete_image(const std::string& name) {
  images::DeleteImageRequest request;
  request.set_name(name);
  google::protobuf::Empty response;
  DS_GRPC_CALL(images, Delete, request, response, "removing image " + name);
  return ok_status();
}

Status ContainerdRpc::begin_lease(std::chrono::seconds ttl) {
  leases::CreateRequest request;
  static std::atomic<uint64_t> counter{0};
  request.set_id("deltasync-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter.fetch_add(1)) + "-" +
                 std::to_string(std::chrono::system_clock::now().time_since_epoch().count()));
  // containerd's GC drops the lease after this time if we never delete it.
  auto expire = std::chrono::system_clock::now() + ttl;
  std::time_t t = std::chrono::system_clock::to_time_t(expire);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  (*request.mutable_labels())["containerd.io/gc.expire"] = text;
  leases::CreateResponse response;
  impl_->lease.clear();
  DS_GRPC_CALL(leases, Create, request, response, "creating a lease");
  impl_->lease = response.lease().id();
  return ok_status();
}

Status ContainerdRpc::end_lease() {
  if (impl_->lease.empty()) return ok_status();
  leases::DeleteRequest request;
  request.set_id(impl_->lease);
  impl_->lease.clear();
  google::protobuf::Empty response;
  DS_GRPC_CALL(leases, Delete, request, response, "removing our lease");
  return ok_status();
}

Status ContainerdRpc::lease_content(const std::string& digest) {
  if (!impl_->lease.empty()) {
    leases::AddResourceRequest request;
    request.set_id(impl_->lease);
    request.mutable_resource()->set_id(digest);
    request.mutable_resource()->set_type("content");
    google::protobuf::Empty response;
    DS_GRPC_CALL(leases, AddResource, request, response, "leasing blob " + digest);
  }
  DS_RETURN_IF_ERROR(content_info(digest));
  return ok_status();
}

Status ContainerdRpc::stat_snapshot(const std::string& key) {
  snapshots::StatSnapshotRequest request;
  request.set_snapshotter(parsed_.snapshotter);
  request.set_key(key);
  snapshots::StatSnapshotResponse response;
  DS_GRPC_CALL(snapshots, Stat, request, response,
               "snapshot " + key + " (" + parsed_.snapshotter + ")");
  return ok_status();
}

Result<Mounts> ContainerdRpc::prepare_snapshot(const std::string& key, const std::string& parent) {
  snapshots::PrepareSnapshotRequest request;
  request.set_snapshotter(parsed_.snapshotter);
  request.set_key(key);
  request.set_parent(parent);
  snapshots::PrepareSnapshotResponse response;
  DS_GRPC_CALL(snapshots, Prepare, request, response,
               "preparing a snapshot in the " + parsed_.snapshotter + " snapshotter");
  Mounts mounts;
  for (const auto& m : response.mounts())
    mounts.items.push_back(std::make_shared<const ::containerd::types::Mount>(m));
  return mounts;
}

Status ContainerdRpc::commit_snapshot(const std::string& name, const std::string& key,
                                      const std::map<std::string, std::string>& labels) {
  snapshots::CommitSnapshotRequest request;
  request.set_snapshotter(parsed_.snapshotter);
  request.set_name(name);
  request.set_key(key);
  for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
  google::protobuf::Empty response;
  DS_GRPC_CALL(snapshots, Commit, request, response, "committing snapshot " + name);
  return ok_status();
}

Status ContainerdRpc::remove_snapshot(const std::string& key) {
  snapshots::RemoveSnapshotRequest request;
  request.set_snapshotter(parsed_.snapshotter);
  request.set_key(key);
  google::protobuf::Empty response;
  DS_GRPC_CALL(snapshots, Remove, request, response, "removing snapshot " + key);
  return ok_status();
}

Result<std::string> ContainerdRpc::apply_layer(const Descriptor& layer, const Mounts& mounts) {
  diff::ApplyRequest request;
  to_proto(layer, request.mutable_diff());
  for (const auto& m : mounts.items) *request.add_mounts() = *m;
  diff::ApplyResponse response;
  auto context =
      make_context(parsed_, impl_->lease, stream_timeout(options_.io_timeout, layer.size));
  grpc::Status status = impl_->diff->Apply(context.get(), request, &response);
  if (!status.ok())
    return std::unexpected(
        to_error(status, options_.address, "unpacking layer " + layer.digest + " (diff apply)"));
  return response.applied().digest();
}

#undef DS_GRPC_CALL

}  // namespace deltasync::containerd_rpc
