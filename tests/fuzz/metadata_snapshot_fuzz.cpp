// Arbitrary bytes as the payload of a metadata snapshot (metadata.h), wrapped in a valid header
// and CRC here so that the fuzzer explores the image decoder rather than the checksum: the decoder
// must never read out of bounds, allocate from an unchecked count or crash, and whatever it
// accepts must re-encode to the same bytes (one encoding per image), since brokers and voters
// take snapshots from the network.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "faultline/cluster/controller/metadata.h"

using namespace faultline::cluster;

namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<uint8_t>(v >> shift));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> payload(data, size);
  std::vector<uint8_t> blob;
  put_u32(blob, kMetadataSnapshotMagic);
  blob.push_back(kMetadataSnapshotVersion);
  put_u32(blob, static_cast<uint32_t>(size));
  put_u32(blob, metadata_crc32c(payload));
  blob.insert(blob.end(), payload.begin(), payload.end());
  auto snapshot = decode_metadata_snapshot(blob);
  if (!snapshot)
    return 0;
  std::vector<uint8_t> again;
  encode_metadata_snapshot(snapshot->image, snapshot->last_term, again);
  if (again != blob) {
    size_t at = kMetadataSnapshotHeaderBytes;  // the CRC differs whenever the payload does
    while (at < again.size() && at < blob.size() && again[at] == blob[at])
      ++at;
    std::fprintf(stderr, "re-encoded differently at byte %zu of %zu (payload byte %zu)\n", at,
                 blob.size(), at - kMetadataSnapshotHeaderBytes);
    std::abort();
  }
  return 0;
}
