// CRC32C (Castagnoli), the checksum of iSCSI, ext4 and LevelDB: hardware (SSE4.2) when the CPU
// has it, else table-driven (slice-by-8). Chains: crc32c(crc32c(0, a), b) == crc32c(0, a + b).
#pragma once
#include <cstddef>
#include <cstdint>

namespace rzoo {

uint32_t crc32c(uint32_t crc, const void* data, size_t n);
// The portable table-driven version (the same values; for tests and CPUs without SSE4.2).
uint32_t crc32c_portable(uint32_t crc, const void* data, size_t n);

}  // namespace rzoo
