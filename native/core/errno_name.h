// errno names and the one way an errno failure is spelled in a message, for
// the addon (errors.cc) and the native check_tcp_half_open alike. No N-API.
#pragma once
#include <cstddef>

namespace ho {

// errno → symbolic name, including kernel-internal ones Node does not know (524 = ENOTSUPP); nullptr if unknown.
const char *ErrnoName(int err);

// Appends ": <strerror> (<NAME>)" for err != 0 to the NUL-terminated text in buf (size len).
void AppendErrno(char *buf, size_t len, int err);

}  // namespace ho
