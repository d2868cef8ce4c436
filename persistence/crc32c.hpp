// CRC-32C (Castagnoli), the checksum of every log and snapshot record. Uses the SSE4.2
// instruction when the CPU has it, a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace keygate::persistence {

uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0) noexcept;

}  // namespace keygate::persistence
