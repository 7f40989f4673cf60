// errno names and messages shared by the addon and the native check.
#include "errno_name.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ho {

const char *ErrnoName(int err) {
  switch (err) {
    case 524: return "ENOTSUPP";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENOMEM: return "ENOMEM";
    case ENODEV: return "ENODEV";
    case ENOBUFS: return "ENOBUFS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case E2BIG: return "E2BIG";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EMSGSIZE: return "EMSGSIZE";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETDOWN: return "ENETDOWN";
    default: return nullptr;
  }
}

void AppendErrno(char *buf, size_t len, int err) {
  if (!err) return;
  size_t used = strnlen(buf, len);
  if (used + 1 >= len) return;
  const char *name = ErrnoName(err);
  snprintf(buf + used, len - used, ": %s%s%s%s", err == 524 ? "operation not supported by the kernel" : strerror(err),
           name ? " (" : "", name ? name : "", name ? ")" : "");
}

const char *ErrorCodeText(enum ho_error code) {
  switch (code) {
#define HO_CASE(prefix, name, value) \
  case prefix##name:                 \
    return #name;
    HO_ERROR_LIST(HO_CASE)
#undef HO_CASE
    case HO_E_NONE: break;
  }
  return "E_INTERNAL";
}

enum ho_error ErrnoError(int err, enum ho_error fallback) {
  return (err == EPERM || err == EACCES) ? HO_E_PRIVILEGE : fallback;
}

}  // namespace ho
