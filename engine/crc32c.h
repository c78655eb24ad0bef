#pragma once
// CRC-32C (Castagnoli, as iSCSI and ext4 use it): the checksum of the data each safetensors file we
// write carries in its metadata, so a flipped byte is caught on load. The SSE4.2 instruction when
// the CPU has it (several GB/s), else a slice-by-8 table.
#include <cstddef>
#include <cstdint>

namespace dd {

// Extends crc (0 for a fresh checksum) by size bytes: crc32c(a + b) == crc32c_extend(crc32c(a), b).
uint32_t crc32c_extend(uint32_t crc, const void* data, std::size_t size);
inline uint32_t crc32c(const void* data, std::size_t size) { return crc32c_extend(0, data, size); }
// The table path alone (what a CPU without SSE4.2 runs), for the tests.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, std::size_t size);

}  // namespace dd
