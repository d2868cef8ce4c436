// Record framing (FORMAT.md "Records"): encode one record, and scan a byte range into
// records, telling a clean end from a bad record and whether any valid record follows it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace keygate::persistence {

enum class RecordType : uint8_t {
  organization = 1,
  api_key = 2,
  certificate = 3,
  certificate_deleted = 4,
  project = 5,
  audit_event = 6,
  // The records of one command, applied whole or not at all (FORMAT.md "Groups").
  group = 7,
  footer = 255,
};

inline constexpr size_t kRecordHeader = 12;
inline constexpr uint8_t kPayloadVersion = 1;
// The encoding each type is written in now (FORMAT.md "Records"): API keys (their project),
// certificates (the projects they are active for) and a snapshot's footer (its count of
// keys) are at 2, the others at 1. Readers take every version from 1 up to it.
inline constexpr uint8_t payload_version(RecordType type) noexcept {
  return type == RecordType::api_key || type == RecordType::certificate ||
                 type == RecordType::footer
             ? 2
             : kPayloadVersion;
}
inline constexpr size_t kFileHeader = 16;  // magic + u64 sequence number

// Appends a framed, padded record to `out` (whose size must be a multiple of 8).
void append_record(std::string& out, RecordType type, std::string_view payload);

struct RecordView {
  RecordType type;
  uint8_t version;
  std::string_view payload;
  size_t offset;  // of the record's header within the scanned range
  size_t size;    // header + payload + padding
};

enum class ReadStatus : uint8_t { ok, end, bad };

// Reads the record at `offset` of `data`. `end` when offset == data.size(); `bad` when the
// header is short, the length runs past the end, or the CRC does not match. Without
// `check_crc`, for bytes whose CRCs a first pass has checked (a snapshot is read twice).
ReadStatus read_record(std::string_view data, size_t offset, RecordView& out,
                       bool check_crc = true) noexcept;

// Whether the CRC of the record whose header is at `header` holds: for a record that
// read_record() read without checking it (its length is known to fit).
bool crc_holds(const char* header) noexcept;

// After a bad record at `bad_offset`: is there any valid record at a later aligned offset?
// Yes means corruption in the middle; no means a torn tail.
bool valid_record_after(std::string_view data, size_t bad_offset) noexcept;

}  // namespace keygate::persistence
