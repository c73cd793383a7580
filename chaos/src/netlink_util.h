// Private libnl helpers: RAII for sockets and objects, and NLE_* -> std::error_code mapping with
// the failing call named in the log.
#pragma once

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include <memory>
#include <string_view>
#include <system_error>

namespace faultline::chaos::nl {

const std::error_category& netlink_category() noexcept;

// Maps a negative libnl return value to an error code (positive NLE_* value in netlink_category)
// and logs `call` and `what` with libnl's message.
std::error_code error(int nle, std::string_view call, std::string_view what);

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct AddrDeleter {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using Sock = std::unique_ptr<nl_sock, SockDeleter>;
using Link = std::unique_ptr<rtnl_link, LinkDeleter>;
using Addr = std::unique_ptr<rtnl_addr, AddrDeleter>;
using Cache = std::unique_ptr<nl_cache, CacheDeleter>;

// A NETLINK_ROUTE socket connected in the calling thread's network namespace.
Sock connect_route(std::error_code& ec);

}  // namespace faultline::chaos::nl
