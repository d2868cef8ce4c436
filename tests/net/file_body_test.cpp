// An answer whose body is a file (net::FileBody, a node's snapshot for a joining peer): a
// real Reactor on a loopback socket serving a sparse file, read by a plain socket client.
// It goes out a chunk at a time, never whole in memory; and a reader that stops reading is
// cut off at the idle timeout like any other, not served for good.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "net/server.hpp"

using namespace keygate::net;
using namespace std::chrono_literals;

namespace {

class FileService final : public Service {
 public:
  explicit FileService(std::string path) : path_(std::move(path)) {}
  std::optional<task<void>> handle(const Request&, Response& res) override {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    res.content_type = "application/octet-stream";
    if (fd < 0) {
      res.status = 500;
      return std::nullopt;
    }
    res.file.set(fd, static_cast<uint64_t>(::lseek(fd, 0, SEEK_END)));
    return std::nullopt;
  }
  void reject(ProtocolError, Response& res) override { res.status = 400; }

 private:
  std::string path_;
};

// A server on 127.0.0.1 (a port of its own, one reactor) answering every request with
// the file: net::Server, as `keygate serve` runs it.
class FileServer {
 public:
  FileServer(const std::string& path, std::chrono::milliseconds idle_timeout)
      : service_(path), server_(service_, options(idle_timeout), "kg-test") {
    server_.start(Endpoint{"127.0.0.1", 0}, 1);
  }
  ~FileServer() {
    server_.stop();
    server_.join();
  }
  uint16_t port() const { return server_.bound().port; }

 private:
  static ReactorOptions options(std::chrono::milliseconds idle_timeout) {
    ReactorOptions o;
    o.idle_timeout = idle_timeout;
    return o;
  }
  FileService service_;
  Server server_;
};

// A sparse file of `size` bytes with a marker at its end (a hole reads as zeros).
std::string sparse_file(const std::string& name, uint64_t size) {
  const std::string path =
      (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + ".bin"))
          .string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::pwrite(fd, "END!", 4, static_cast<off_t>(size - 4)), 4);
  ::close(fd);
  return path;
}

int connect_to(uint16_t port, int receive_buffer = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (receive_buffer)  // before connect, so the window is small from the start
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  const std::string request = "GET /file HTTP/1.1\r\nHost: test\r\n\r\n";
  EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  return fd;
}

size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

TEST(FileBody, GoesOutWholeAChunkAtATimeWithoutThePeerHoldingItInMemory) {
  constexpr uint64_t kSize = uint64_t{256} << 20;
  const std::string path = sparse_file("keygate-file-body", kSize);
  {
    FileServer server(path, 10s);
    const size_t resident_before = resident_bytes();
    const int fd = connect_to(server.port());
    std::string head, tail;
    uint64_t body = 0;
    size_t peak = resident_before;
    std::vector<char> buffer(size_t{1} << 20);
    bool head_done = false;
    for (;;) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0) break;
      if (!head_done) {
        head.append(buffer.data(), static_cast<size_t>(n));
        const size_t end = head.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        head_done = true;
        body = head.size() - (end + 4);
        tail = head.substr(end + 4);
        head.resize(end + 4);
      } else {
        body += static_cast<uint64_t>(n);
        tail.append(buffer.data(), static_cast<size_t>(n));
        if (tail.size() > 8) tail.erase(0, tail.size() - 8);
      }
      peak = std::max(peak, resident_bytes());
      if (body >= kSize) break;
    }
    ::close(fd);
    EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
    EXPECT_NE(head.find("Content-Length: " + std::to_string(kSize)), std::string::npos) << head;
    EXPECT_EQ(body, kSize);
    ASSERT_GE(tail.size(), 4u);
    EXPECT_EQ(tail.substr(tail.size() - 4), "END!");
    // Read whole first, the answer would have cost the process the file's size.
    EXPECT_LT(peak - resident_before, size_t{64} << 20)
        << "resident grew by " << (peak - resident_before) / 1048576 << " MiB";
  }
  std::filesystem::remove(path);
}

TEST(FileBody, APeerThatStopsReadingIsCutOffAtTheIdleTimeout) {
  constexpr uint64_t kSize = uint64_t{128} << 20;  // far beyond what the sockets buffer
  const std::string path = sparse_file("keygate-file-body-stall", kSize);
  {
    FileServer server(path, 300ms);
    const int fd = connect_to(server.port(), 16 << 10);
    // Read nothing for a while: the server's sends stop completing.
    std::this_thread::sleep_for(2s);
    uint64_t received = 0;
    std::string head;  // the first bytes: the answer began, so what follows is a cut
    std::vector<char> buffer(size_t{1} << 20);
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0) break;  // the cut: EOF, or a reset
      if (head.size() < 64) head.append(buffer.data(), std::min<size_t>(64, n));
      received += static_cast<uint64_t>(n);
    }
    ::close(fd);
    EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
    EXPECT_GT(received, 4096u) << "the file's transfer never began";
    // Not cut, the peer goes on sending what the reader takes: all of it, head included.
    EXPECT_LT(received, kSize) << "the stalled reader was served the whole file";
  }
  std::filesystem::remove(path);
}
