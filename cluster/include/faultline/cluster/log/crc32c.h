// CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of every record batch.
//
// Debian ships no crc32c library, and the batch CRC sits on the hot path of produce, fetch and
// recovery, so this is a table-driven slice-by-8 implementation (~8 bytes per table round); on
// x86-64 CPUs with SSE4.2 the crc32 instruction computes the same function several times faster
// and is used instead (chosen once at run time).
#pragma once

#include <cstdint>
#include <span>

namespace faultline::cluster {

// CRC32C of `data`. Pass a previous result as `crc` to continue a checksum over several pieces:
// crc32c(b, crc32c(a)) == crc32c(a + b). crc32c("123456789") == 0xE3069283.
uint32_t crc32c(std::span<const char> data, uint32_t crc = 0);

// The portable slice-by-8 path on its own (tests check the two paths agree).
uint32_t crc32c_slice8(std::span<const char> data, uint32_t crc = 0);

}  // namespace faultline::cluster
