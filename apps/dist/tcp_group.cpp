#include "apps/dist/tcp_group.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "engine/error.h"

namespace dd::dist {

namespace {
using clk = std::chrono::steady_clock;
constexpr uint32_t kMagic = 0x44445450;  // "DDTP": a stray client on the port is told apart from a rank
constexpr double kDefaultTimeout = 1800.0;

struct Hello {
  uint32_t magic;
  int32_t rank, world;
};
struct Reply {
  char error[120];  // empty: accepted
};

std::string errno_text() { return std::strerror(errno); }

double seconds_left(clk::time_point deadline) {
  return std::chrono::duration<double>(deadline - clk::now()).count();
}

// Waits until fd is ready for `events` or the deadline passes (false).
bool wait_ready(int fd, short events, clk::time_point deadline) {
  for (;;) {
    const double left = seconds_left(deadline);
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min(left * 1000.0, 1e9)) + 1);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) DD_FAIL("TCP group: poll failed: ", errno_text());
  }
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string peer_name(int rank, int peer) {
  return peer == 0 ? "rank 0" : "rank " + std::to_string(peer) + (rank == 0 ? "" : " (via rank 0)");
}
}  // namespace

double TcpGroup::timeout_from_env() {
  const char* v = std::getenv("DD_DIST_TIMEOUT");
  if (!v || !*v) return kDefaultTimeout;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  DD_CHECK(end && *end == '\0' && s > 0, "DD_DIST_TIMEOUT must be a number of seconds > 0, got '", v, "'");
  return s;
}

TcpGroup::TcpGroup(int rank, int world_size, const std::string& master_addr, int master_port, double timeout_s)
    : rank_(rank), world_(world_size), timeout_s_(timeout_s) {
  DD_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "TCP group: rank ", rank, " of world size ", world_size);
  DD_CHECK(master_port > 0 && master_port < 65536, "MASTER_PORT must be a TCP port (1-65535), got ", master_port);
  DD_CHECK(!master_addr.empty(), "MASTER_ADDR is empty: set it to rank 0's host name or address");
  const clk::time_point deadline = clk::now() + std::chrono::duration_cast<clk::duration>(
                                                    std::chrono::duration<double>(timeout_s));
  const std::string where = master_addr + ":" + std::to_string(master_port);
  if (rank == 0) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    DD_CHECK(listen_fd_ >= 0, "TCP group: socket failed: ", errno_text());
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(master_port));
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const std::string why = errno_text();
      close_all();
      DD_FAIL("rank 0 cannot listen on port ", master_port, " (MASTER_PORT): ", why,
              " (another job on this port? choose another MASTER_PORT)");
    }
    DD_CHECK(::listen(listen_fd_, world_size) == 0, "TCP group: listen failed: ", errno_text());
    peers_.assign(world_size, -1);
    for (int joined = 1; joined < world_size;) {
      if (!wait_ready(listen_fd_, POLLIN, deadline)) {
        std::string missing;
        for (int r = 1; r < world_size; ++r)
          if (peers_[r] < 0) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        close_all();
        DD_FAIL("rank 0: ranks ", missing, " of ", world_size, " did not connect to port ", master_port, " within ",
                timeout_s, " s (DD_DIST_TIMEOUT): are they started, with MASTER_ADDR reaching this host?");
      }
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      set_nodelay(fd);
      Hello h{};
      Reply reply{};
      try {
        recv_all(fd, &h, sizeof h, -1);
      } catch (const Error&) {
        ::close(fd);  // not one of ours (a port scan, a stale client): keep waiting for the ranks
        continue;
      }
      if (h.magic != kMagic) {
        ::close(fd);
        continue;
      }
      if (h.world != world_size)
        std::snprintf(reply.error, sizeof reply.error, "rank 0 has WORLD_SIZE %d, this rank %d", world_size, h.world);
      else if (h.rank <= 0 || h.rank >= world_size)
        std::snprintf(reply.error, sizeof reply.error, "RANK %d is not in 1..%d", h.rank, world_size - 1);
      else if (peers_[h.rank] >= 0)
        std::snprintf(reply.error, sizeof reply.error, "RANK %d joined twice", h.rank);
      send_all(fd, &reply, sizeof reply, h.rank);
      if (reply.error[0]) {
        ::close(fd);
        const std::string why = reply.error;
        close_all();
        DD_FAIL("rank 0: a rank was refused: ", why);
      }
      peers_[h.rank] = fd;
      ++joined;
    }
    return;
  }
  // Other ranks: connect (retrying while rank 0 is not listening yet), introduce, await the verdict.
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int gai = ::getaddrinfo(master_addr.c_str(), std::to_string(master_port).c_str(), &hints, &found);
  DD_CHECK(gai == 0 && found, "MASTER_ADDR ", master_addr, " does not resolve to an IPv4 address: ", gai_strerror(gai));
  int fd = -1;
  std::string last = "no attempt";
  while (fd < 0) {
    for (addrinfo* ai = found; ai && fd < 0; ai = ai->ai_next) {
      const int s = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (s < 0) continue;
      if (::connect(s, ai->ai_addr, ai->ai_addrlen) == 0) {
        fd = s;
      } else {
        last = errno_text();
        ::close(s);
      }
    }
    if (fd >= 0) break;
    if (seconds_left(deadline) <= 0) {
      ::freeaddrinfo(found);
      DD_FAIL("rank ", rank, " cannot reach rank 0 at ", where, " (MASTER_ADDR:MASTER_PORT) within ", timeout_s,
              " s (DD_DIST_TIMEOUT): ", last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::freeaddrinfo(found);
  set_nodelay(fd);
  peers_.assign(1, fd);
  const Hello h{kMagic, rank, world_size};
  send_all(fd, &h, sizeof h, 0);
  Reply reply{};
  recv_all(fd, &reply, sizeof reply, 0);
  reply.error[sizeof reply.error - 1] = '\0';
  if (reply.error[0]) {
    const std::string why = reply.error;
    close_all();
    DD_FAIL("rank ", rank, ": rank 0 at ", where, " refused this rank: ", why);
  }
}

TcpGroup::~TcpGroup() { close_all(); }

void TcpGroup::close_all() {
  for (int& fd : peers_)
    if (fd >= 0) ::close(fd), fd = -1;
  if (listen_fd_ >= 0) ::close(listen_fd_), listen_fd_ = -1;
}

void TcpGroup::send_all(int fd, const void* p, size_t bytes, int peer) {
  const clk::time_point deadline = clk::now() + std::chrono::duration_cast<clk::duration>(
                                                    std::chrono::duration<double>(timeout_s_));
  const char* c = static_cast<const char*>(p);
  while (bytes > 0) {
    DD_CHECK(wait_ready(fd, POLLOUT, deadline), "rank ", rank_, ": sending to ", peer_name(rank_, peer),
             " timed out after ", timeout_s_, " s (DD_DIST_TIMEOUT)");
    const ssize_t k = ::send(fd, c, bytes, MSG_NOSIGNAL);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    DD_CHECK(k > 0, "rank ", rank_, ": ", peer_name(rank_, peer), " is gone (", errno_text(),
             "): it failed or was stopped");
    c += k;
    bytes -= static_cast<size_t>(k);
  }
}

void TcpGroup::recv_all(int fd, void* p, size_t bytes, int peer) {
  const clk::time_point deadline = clk::now() + std::chrono::duration_cast<clk::duration>(
                                                    std::chrono::duration<double>(timeout_s_));
  char* c = static_cast<char*>(p);
  while (bytes > 0) {
    DD_CHECK(wait_ready(fd, POLLIN, deadline), "rank ", rank_, ": waiting for ",
             peer < 0 ? std::string("a joining rank") : peer_name(rank_, peer), " timed out after ", timeout_s_,
             " s (DD_DIST_TIMEOUT)");
    const ssize_t k = ::recv(fd, c, bytes, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    DD_CHECK(k > 0, "rank ", rank_, ": ", peer < 0 ? std::string("a joining rank") : peer_name(rank_, peer),
             " closed the connection", k < 0 ? " (" + errno_text() + ")" : std::string(),
             ": it failed or was stopped");
    c += k;
    bytes -= static_cast<size_t>(k);
  }
}

void TcpGroup::allreduce_mean(float* data, int64_t n) {
  if (world_ == 1 || n == 0) return;
  const size_t bytes = sizeof(float) * static_cast<size_t>(n);
  if (rank_ != 0) {
    send_all(peers_[0], data, bytes, 0);
    recv_all(peers_[0], data, bytes, 0);
    return;
  }
  scratch_.resize(static_cast<size_t>(n));
  for (int r = 1; r < world_; ++r) {  // rank order: the same sum whatever order the ranks arrive in
    recv_all(peers_[r], scratch_.data(), bytes, r);
    for (int64_t i = 0; i < n; ++i) data[i] += scratch_[static_cast<size_t>(i)];
  }
  const float inv = 1.0f / static_cast<float>(world_);  // exact for a power of two, as the MPI path
  for (int64_t i = 0; i < n; ++i) data[i] *= inv;
  for (int r = 1; r < world_; ++r) send_all(peers_[r], data, bytes, r);
}

void TcpGroup::broadcast_from_root(float* data, int64_t n) {
  if (n > 0) broadcast_bytes(data, sizeof(float) * static_cast<size_t>(n));
}

void TcpGroup::broadcast_bytes(void* data, size_t bytes) {
  if (world_ == 1 || bytes == 0) return;
  if (rank_ != 0) {
    recv_all(peers_[0], data, bytes, 0);
    return;
  }
  for (int r = 1; r < world_; ++r) send_all(peers_[r], data, bytes, r);
}

void TcpGroup::barrier() {
  float token = 0.0f;
  allreduce_mean(&token, 1);
}

}  // namespace dd::dist
