#include "netlink_util.h"

#include <spdlog/spdlog.h>

#include <string>

namespace faultline::chaos::nl {
namespace {
class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "netlink"; }
  std::string message(int ev) const override { return nl_geterror(ev); }
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (ev) {
      case NLE_EXIST:
        return std::errc::file_exists;
      case NLE_OBJ_NOTFOUND:
      case NLE_NODEV:
        return std::errc::no_such_device;
      case NLE_PERM:
        return std::errc::operation_not_permitted;
      case NLE_NOMEM:
        return std::errc::not_enough_memory;
      case NLE_BUSY:
        return std::errc::device_or_resource_busy;
      case NLE_INVAL:
        return std::errc::invalid_argument;
      case NLE_OPNOTSUPP:
        return std::errc::operation_not_supported;
      default:
        return {ev, *this};
    }
  }
};
}  // namespace

const std::error_category& netlink_category() noexcept {
  static const Category c;
  return c;
}

std::error_code error(int nle, std::string_view call, std::string_view what) {
  int code = nle < 0 ? -nle : nle;
  spdlog::info("chaos.netlink_error call={} what={} error=\"{}\"", call, what, nl_geterror(code));
  return {code, netlink_category()};
}

Sock connect_route(std::error_code& ec) {
  Sock sock(nl_socket_alloc());
  if (!sock) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return nullptr;
  }
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    ec = error(err, "nl_connect", "NETLINK_ROUTE");
    return nullptr;
  }
  ec.clear();
  return sock;
}

}  // namespace faultline::chaos::nl
