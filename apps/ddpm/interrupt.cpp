#include "apps/ddpm/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace dd::ddpm {

namespace {

std::atomic<int> g_stop_signal{0};
std::atomic<int> g_checkpoint_requests{0};
std::atomic<int> g_guards{0};
struct sigaction g_prev_int, g_prev_term, g_prev_usr1;

extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  if (g_stop_signal.compare_exchange_strong(expected, sig)) return;
  if (sig == SIGINT) {  // the second Ctrl-C: leave now, touching nothing
    const char msg[] = "\ninterrupted again: exiting at once; the files on disk are whole (each is written temp + "
                       "rename)\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(130);
  }
}

extern "C" void on_checkpoint_signal(int) { g_checkpoint_requests.fetch_add(1); }

void install(int sig, void (*fn)(int), struct sigaction* prev) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a read or write in progress goes on; the loops poll the flags
  sigaction(sig, &sa, prev);
}

}  // namespace

InterruptGuard::InterruptGuard() {
  if (g_guards.fetch_add(1) != 0) return;
  g_stop_signal = 0;
  g_checkpoint_requests = 0;
  install(SIGINT, on_stop_signal, &g_prev_int);
  install(SIGTERM, on_stop_signal, &g_prev_term);
  install(SIGUSR1, on_checkpoint_signal, &g_prev_usr1);
}

InterruptGuard::~InterruptGuard() {
  if (g_guards.fetch_sub(1) != 1) return;
  sigaction(SIGINT, &g_prev_int, nullptr);
  sigaction(SIGTERM, &g_prev_term, nullptr);
  sigaction(SIGUSR1, &g_prev_usr1, nullptr);
}

int stop_signal() { return g_stop_signal.load(); }
int stop_exit_code() { return stop_signal() ? 128 + stop_signal() : 0; }
const char* stop_signal_name() {
  switch (stop_signal()) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "no signal";
  }
}

bool take_checkpoint_request() { return g_checkpoint_requests.exchange(0) > 0; }

void reset_interrupts() {
  g_stop_signal = 0;
  g_checkpoint_requests = 0;
}

}  // namespace dd::ddpm
