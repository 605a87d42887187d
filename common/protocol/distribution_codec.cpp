#include "common/protocol/distribution_codec.h"

#include <algorithm>

#include "common/codec/compression.h"
#include "proto/deltasync.pb.h"

namespace deltasync {

namespace {

constexpr size_t kMaxEncodedBytes = 8 << 20;

void to_wire(const BlobDescriptor& d, wire::BlobDescriptorWire* out) {
  out->set_media_type(d.media_type);
  out->set_digest(d.digest.str());
  out->set_size(d.size);
}

Result<BlobDescriptor> from_wire(const wire::BlobDescriptorWire& in, const std::string& what) {
  BlobDescriptor d;
  d.media_type = in.media_type();
  DS_ASSIGN_OR_RETURN(d.digest, with_context(Digest::parse(in.digest()), what));
  d.size = in.size();
  return d;
}

}  // namespace

std::string encode_distribution(const DistributionIdentity& identity) {
  wire::DistributionIdentity message;
  to_wire(identity.target, message.mutable_target());
  message.set_manifest_digest(identity.manifest_digest.str());
  message.set_platform(identity.platform);
  for (const auto& doc : identity.documents) message.add_documents(doc);
  for (const auto& layer : identity.layers) {
    auto* out = message.add_layers();
    to_wire(layer.blob, out->mutable_blob());
    if (layer.recipe) {
      out->set_recipe_flavor(layer.recipe->flavor);
      out->set_recipe_level(layer.recipe->level);
    }
  }
  auto packed = zstd_compress(message.SerializeAsString(), 19);
  return packed ? *packed : std::string();
}

Result<DistributionIdentity> decode_distribution(std::string_view encoded,
                                                 const std::vector<Digest>& diff_ids) {
  const std::string what = "distribution identity";
  DS_ASSIGN_OR_RETURN(std::string bytes,
                      with_context(zstd_decompress(encoded, kMaxEncodedBytes), what));
  wire::DistributionIdentity message;
  if (!message.ParseFromString(bytes))
    return make_error(ErrorCode::kProtocol, what + ": not a valid DistributionIdentity message");
  DistributionIdentity identity;
  DS_ASSIGN_OR_RETURN(identity.target, from_wire(message.target(), what + ": target"));
  DS_ASSIGN_OR_RETURN(identity.manifest_digest,
                      with_context(Digest::parse(message.manifest_digest()), what + ": manifest"));
  identity.platform = message.platform();
  std::vector<Digest> document_digests;
  for (const auto& doc : message.documents()) {
    identity.documents.push_back(doc);
    document_digests.push_back(Digest::of(doc));
  }
  auto has_document = [&](const Digest& d) {
    return std::find(document_digests.begin(), document_digests.end(), d) != document_digests.end();
  };
  if (!has_document(identity.target.digest) || !has_document(identity.manifest_digest))
    return make_error(ErrorCode::kProtocol,
                      what + ": the documents do not include the target and its manifest");
  if (static_cast<size_t>(message.layers_size()) != diff_ids.size())
    return make_error(ErrorCode::kProtocol, what + ": " + std::to_string(message.layers_size()) +
                                                " layers for an image of " +
                                                std::to_string(diff_ids.size()));
  for (int i = 0; i < message.layers_size(); ++i) {
    const auto& in = message.layers(i);
    DistributionLayer layer;
    layer.diff_id = diff_ids[static_cast<size_t>(i)];
    DS_ASSIGN_OR_RETURN(layer.blob,
                        from_wire(in.blob(), what + ": layer " + std::to_string(i + 1)));
    if (!in.recipe_flavor().empty())
      layer.recipe = BlobRecipe{in.recipe_flavor(), in.recipe_level()};
    identity.layers.push_back(std::move(layer));
  }
  return identity;
}

}  // namespace deltasync
