#include "handlers/console.hpp"

#include "handlers/errors.hpp"
#include "handlers/exchange.hpp"

namespace keygate::handlers {

namespace {

// Served only when enabled (--console, on by default); a disabled console is a 404 like
// any unknown path, so it is not there to probe.
bool enabled(Exchange& ex) {
  if (ex.app.config.console) return true;
  write_error(ex, core::ErrorCode::not_found,
              "The console is turned off on this server (--console=false).");
  return false;
}

void serve(Exchange& ex, std::string_view name) {
  for (size_t i = 0; i < kConsoleFileCount; ++i) {
    const ConsoleFile& f = kConsoleFiles[i];
    if (f.name != name) continue;
    ex.res.status = 200;
    ex.res.content_type = f.content_type;
    ex.res.body.assign(f.bytes);
    ex.res.add_header("Content-Security-Policy", kConsoleCsp);
    // For browsers that predate frame-ancestors, and against MIME sniffing of a module.
    ex.res.add_header("X-Frame-Options", "DENY");
    ex.res.add_header("X-Content-Type-Options", "nosniff");
    ex.res.add_header("Referrer-Policy", "no-referrer");
    // Revalidated each time: the files change with the binary, and they are small.
    ex.res.add_header("Cache-Control", "no-cache");
    return;
  }
  write_error(ex, core::ErrorCode::not_found, "The console has no such file.");
}

}  // namespace

void console_root(Exchange& ex) {
  if (!enabled(ex)) return;
  ex.res.status = 308;
  ex.res.add_header("Location", "/console/");
  ex.res.add_header("Content-Security-Policy", kConsoleCsp);
}

void console_index(Exchange& ex) {
  if (enabled(ex)) serve(ex, "index.html");
}

void console_file(Exchange& ex) {
  if (enabled(ex)) serve(ex, ex.params[0]);
}

}  // namespace keygate::handlers
