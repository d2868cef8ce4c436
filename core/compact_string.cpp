#include "core/compact_string.hpp"

#include <limits>
#include <stdexcept>

namespace keygate::core {

void CompactString::init(std::string_view text) {
  if (text.size() <= kInline) {
    std::memcpy(bytes_, text.data(), text.size());
    bytes_[kTag] = static_cast<uint8_t>(text.size());
    return;
  }
  if (text.size() > std::numeric_limits<uint32_t>::max())
    throw std::length_error("CompactString: text too long");
  char* p = new char[text.size()];
  std::memcpy(p, text.data(), text.size());
  const auto n = static_cast<uint32_t>(text.size());
  std::memcpy(bytes_, &p, sizeof p);
  std::memcpy(bytes_ + sizeof p, &n, sizeof n);
  bytes_[kTag] = kHeap;
}

void CompactString::release() noexcept {
  if (on_heap()) delete[] heap_pointer();
  bytes_[kTag] = 0;
}

}  // namespace keygate::core
