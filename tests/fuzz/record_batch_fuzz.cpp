// libFuzzer target for the record batch decoders (cluster/include/faultline/cluster/log/
// record_batch.h): every byte a broker reads from a producer, a leader or its own disk goes
// through validate_batch / decode_records / split_batches first. Besides memory safety (ASan,
// UBSan) it checks that the three agree with each other.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "faultline/cluster/log/crc32c.h"
#include "faultline/cluster/log/record_batch.h"

using namespace faultline::cluster;

namespace {

void check(std::span<const char> bytes) {
  const size_t size = bytes.size();

  const errc one = validate_batch(bytes);

  std::vector<Record> records;
  const errc decoded = decode_records(bytes, records);

  std::vector<std::span<const char>> parts;
  const errc split = split_batches(bytes, parts);

  // The two walkers over concatenations must agree on whether the input is acceptable.
  if ((decoded == errc::none) != (split == errc::none))
    std::abort();
  if (one == errc::none) {
    // A valid single batch decodes to exactly its records, with consecutive offsets.
    const BatchView view(bytes);
    if (decoded != errc::none || parts.size() != 1 ||
        records.size() != static_cast<size_t>(view.record_count()))
      std::abort();
    for (size_t i = 0; i < records.size(); ++i)
      if (records[i].offset.value() != view.base_offset().value() + static_cast<int64_t>(i))
        std::abort();
  }
  if (split == errc::none) {
    size_t covered = 0;
    for (const auto& p : parts) {
      if (validate_batch(p) != errc::none || p.data() != bytes.data() + covered)
        std::abort();
      covered += p.size();
    }
    if (covered > size)
      std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const char> bytes(reinterpret_cast<const char*>(data), size);
  check(bytes);
  // Random bytes almost never carry a matching CRC, which would leave the record parser behind
  // it unexplored: check a copy with the CRC field recomputed as well.
  if (size >= batch_layout::kHeaderSize) {
    std::vector<char> fixed(bytes.begin(), bytes.end());
    const uint32_t crc = crc32c(std::span<const char>(fixed).subspan(batch_layout::kAttributes));
    for (int i = 0; i < 4; ++i)
      fixed[batch_layout::kCrc + i] = static_cast<char>(crc >> (24 - 8 * i));
    check(fixed);
  }
  return 0;
}
