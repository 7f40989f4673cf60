// Error codes, errno names, and the one way an errno failure is spelled in a
// message and mapped to a code, for the addon (errors.cc) and the native
// check_tcp_half_open alike. No N-API.
#pragma once
#include <cstddef>
#include <linux/types.h>

extern "C" {
#include "halfopen.h"
}

namespace ho {

// errno → symbolic name, including kernel-internal ones Node does not know (524 = ENOTSUPP); nullptr if unknown.
const char *ErrnoName(int err);

// The text of an error code: HO_E_USAGE -> "E_USAGE" (enum ho_error, bpf/halfopen.h).
const char *ErrorCodeText(enum ho_error code);

// The code of a failed call: EPERM and EACCES are missing privileges, anything else `fallback`.
enum ho_error ErrnoError(int err, enum ho_error fallback);

// Appends ": <strerror> (<NAME>)" for err != 0 to the NUL-terminated text in buf (size len).
void AppendErrno(char *buf, size_t len, int err);

}  // namespace ho
