#include "persistence/record.hpp"

#include <cstring>

#include "persistence/crc32c.hpp"

namespace keygate::persistence {

namespace {

uint32_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

size_t padded(size_t n) {
  return (n + 7) & ~size_t{7};
}

uint32_t record_crc(uint8_t type, uint8_t version, std::string_view payload) {
  const unsigned char tv[2] = {type, version};
  return crc32c(payload.data(), payload.size(), crc32c(tv, 2));
}

}  // namespace

void append_record(std::string& out, RecordType type, std::string_view payload) {
  const auto t = static_cast<uint8_t>(type);
  char header[kRecordHeader] = {};
  const auto len = static_cast<uint32_t>(payload.size());
  const uint8_t version = payload_version(type);
  const uint32_t crc = record_crc(t, version, payload);
  std::memcpy(header, &len, 4);
  std::memcpy(header + 4, &crc, 4);
  header[8] = static_cast<char>(t);
  header[9] = static_cast<char>(version);
  out.append(header, kRecordHeader).append(payload);
  out.append(padded(kRecordHeader + payload.size()) - kRecordHeader - payload.size(), '\0');
}

ReadStatus read_record(std::string_view data, size_t offset, RecordView& out,
                       bool check_crc) noexcept {
  if (offset == data.size()) return ReadStatus::end;
  if (offset > data.size() || data.size() - offset < kRecordHeader) return ReadStatus::bad;
  const char* h = data.data() + offset;
  const uint32_t len = load32(h);
  const uint32_t crc = load32(h + 4);
  const auto type = static_cast<uint8_t>(h[8]);
  const auto version = static_cast<uint8_t>(h[9]);
  if (len > data.size() - offset - kRecordHeader) return ReadStatus::bad;
  std::string_view payload(h + kRecordHeader, len);
  if (check_crc && record_crc(type, version, payload) != crc) return ReadStatus::bad;
  if ((type < 1 || type > static_cast<uint8_t>(RecordType::group)) && type != 255)
    return ReadStatus::bad;
  out.type = static_cast<RecordType>(type);
  out.version = version;
  out.payload = payload;
  out.offset = offset;
  out.size = std::min(padded(kRecordHeader + len), data.size() - offset);
  return ReadStatus::ok;
}

bool crc_holds(const char* header) noexcept {
  return record_crc(static_cast<uint8_t>(header[8]), static_cast<uint8_t>(header[9]),
                    {header + kRecordHeader, load32(header)}) == load32(header + 4);
}

bool valid_record_after(std::string_view data, size_t bad_offset) noexcept {
  RecordView r;
  for (size_t off = (bad_offset + 8) & ~size_t{7}; off + kRecordHeader <= data.size(); off += 8) {
    // A zero length word with a zero CRC is padding or unwritten space, not a record.
    if (load32(data.data() + off) == 0 && load32(data.data() + off + 4) == 0) continue;
    if (read_record(data, off, r) == ReadStatus::ok) return true;
  }
  return false;
}

}  // namespace keygate::persistence
