// CompactString: the text a key record holds (its name) in 16 bytes, against std::string's
// 32, so that the record fits mimalloc's 128-byte class (core/model.hpp). Up to 15 bytes
// live inline, as std::string's own short-string buffer holds them; a longer text is one
// heap block of exactly its size. It is a value: copying copies, assignment replaces the
// whole text, and there is no in-place editing (records are immutable once published).
//
// Layout: bytes 0-14 hold the inline characters and byte 15 their count (0-15); a heap text
// puts its pointer in bytes 0-7, its length in 8-11 and kHeap in byte 15.
#pragma once

#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>

namespace keygate::core {

class CompactString {
 public:
  static constexpr size_t kInline = 15;

  CompactString() noexcept { bytes_[kTag] = 0; }
  CompactString(std::string_view text) { init(text); }  // NOLINT: converts like std::string
  CompactString(const CompactString& other) { init(other.view()); }
  CompactString(CompactString&& other) noexcept {
    std::memcpy(bytes_, other.bytes_, sizeof bytes_);
    other.bytes_[kTag] = 0;
  }
  CompactString& operator=(const CompactString& other) {
    if (this != &other) *this = CompactString(other);
    return *this;
  }
  CompactString& operator=(CompactString&& other) noexcept {
    if (this != &other) {
      release();
      std::memcpy(bytes_, other.bytes_, sizeof bytes_);
      other.bytes_[kTag] = 0;
    }
    return *this;
  }
  CompactString& operator=(std::string_view text) { return *this = CompactString(text); }
  ~CompactString() { release(); }

  std::string_view view() const noexcept {
    if (!on_heap()) return {reinterpret_cast<const char*>(bytes_), bytes_[kTag]};
    return {heap_pointer(), heap_size()};
  }
  operator std::string_view() const noexcept { return view(); }  // NOLINT
  std::string str() const { return std::string(view()); }
  size_t size() const noexcept { return on_heap() ? heap_size() : bytes_[kTag]; }
  bool empty() const noexcept { return size() == 0; }
  bool on_heap() const noexcept { return bytes_[kTag] == kHeap; }

  friend bool operator==(const CompactString& a, const CompactString& b) noexcept {
    return a.view() == b.view();
  }
  friend bool operator==(const CompactString& a, std::string_view b) noexcept {
    return a.view() == b;
  }
  friend bool operator==(const CompactString& a, const char* b) noexcept { return a.view() == b; }
  friend std::ostream& operator<<(std::ostream& os, const CompactString& s) {
    return os << s.view();
  }

 private:
  static constexpr size_t kTag = 15;
  static constexpr uint8_t kHeap = 0xFF;

  void init(std::string_view text);  // the constructor's body; bytes_ uninitialized before
  void release() noexcept;
  const char* heap_pointer() const noexcept {
    const char* p;
    std::memcpy(&p, bytes_, sizeof p);
    return p;
  }
  uint32_t heap_size() const noexcept {
    uint32_t n;
    std::memcpy(&n, bytes_ + sizeof(char*), sizeof n);
    return n;
  }

  alignas(8) uint8_t bytes_[16];
};

static_assert(sizeof(CompactString) == 16);

}  // namespace keygate::core
