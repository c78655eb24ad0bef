#pragma once
// expect_error(fn, parts): fn must throw dd::Error whose message contains every one of parts.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/error.h"

namespace dd::test {

template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    FAIL("no error was thrown; expected one containing '" << parts.front() << "'");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const std::string& p : parts) CHECK_THAT(msg, Catch::Contains(p));
  }
}

}  // namespace dd::test
