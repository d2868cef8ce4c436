// The browser console (console/, docs/console.md): static files compiled into the binary
// and served under /console/ with a strict Content-Security-Policy. It is a client of the
// HTTP API like any other: it adds no endpoint, holds no state on the server, and sends
// the signed-in key in `Authorization`, so every scope rule applies to it unchanged.
#pragma once

#include <cstddef>
#include <string_view>

namespace keygate::handlers {

struct Exchange;

struct ConsoleFile {
  std::string_view name;  // "app.js": the console's files live in one flat directory
  std::string_view content_type;
  std::string_view bytes;
};
extern const ConsoleFile kConsoleFiles[];
extern const size_t kConsoleFileCount;

// GET /console: a redirect to /console/, so relative module URLs resolve under it.
void console_root(Exchange& ex);
// GET /console/ (index.html) and GET /console/{file}.
void console_index(Exchange& ex);
void console_file(Exchange& ex);

// The headers every console answer carries (docs/security.md, "The console").
inline constexpr std::string_view kConsoleCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace keygate::handlers
