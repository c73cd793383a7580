// The run's network (ARCHITECTURE.md §1): bridges "int" and "ext" in the root namespace (the
// harness has .1 on both), and per node a network namespace joined to its bridges by veth pairs
// whose node end is named "int"/"ext" inside the namespace. Built with libnl-route; every resource
// is journaled before it is created.
//
// Isolation: each bridge is its own /24 and a node only has the connected route of its own
// interfaces, so clients (ext only) have no route to the int network. Host sysctls (ip_forward)
// are left untouched.
//
// Lifecycle: Topology::create() builds everything (rolling back what it made on failure);
// destroying the Topology (or teardown()) removes it: host veth ends (which takes their peers),
// bridges, namespaces. Processes inside must be stopped before (the Supervisor does that).
// Not thread-safe; one owner.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "faultline/chaos/naming.h"

namespace faultline::chaos {

class Journal;

struct TopologySpec {
  int controllers = 1;
  int brokers = 3;
  bool clients = true;
  bool probe = true;
  AddressPlan addresses;
};

struct NodeInfo {
  std::string id;  // "c1", "b1", "cl", "pr"
  NodeRole role;
  int index = 0;      // controller/broker number (1-based); 0 for clients/probe
  std::string netns;  // name under /run/netns
  std::optional<Ipv4> int_address;
  std::optional<Ipv4> ext_address;
};

// The nodes a spec describes, with names and addresses (pure; used by create and by tests).
std::vector<NodeInfo> plan_nodes(const TopologySpec& spec, std::string_view prefix,
                                 std::error_code& ec);

class Topology {
 public:
  // journal must outlive the Topology; its prefix names every resource.
  static std::unique_ptr<Topology> create(const TopologySpec& spec, Journal& journal,
                                          std::error_code& ec);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // Removes everything; idempotent. Returns the first error but tries every resource.
  std::error_code teardown();

  const std::vector<NodeInfo>& nodes() const { return nodes_; }
  const NodeInfo* find(std::string_view id) const;
  const std::string& prefix() const { return prefix_; }
  const AddressPlan& addresses() const { return spec_.addresses; }

 private:
  Topology(TopologySpec spec, Journal& journal, std::vector<NodeInfo> nodes);
  std::error_code build();

  TopologySpec spec_;
  Journal& journal_;
  std::string prefix_;
  std::vector<NodeInfo> nodes_;
  // (kind, name) of every resource this Topology made, in creation order.
  std::vector<std::pair<std::string_view, std::string>> created_;
  uint32_t group_ = 0;  // link_group(prefix_): every host-side link and bridge is in it
  bool torn_down_ = false;
};

// IPv4 addresses assigned in the current (root) namespace, for pick_free_plan().
std::vector<Ipv4> local_ipv4_addresses(std::error_code& ec);

// An exclusive flock on <state root>/addresses.lock, held while a run picks its address plan and
// builds its bridges, so two runs starting together never take the same slot.
class AddressLock {
 public:
  explicit AddressLock(const std::filesystem::path& state_root);
  ~AddressLock();
  AddressLock(const AddressLock&) = delete;
  AddressLock& operator=(const AddressLock&) = delete;

 private:
  int fd_ = -1;
};

// Link names in the caller's namespace (via libnl), for leak checks and `clean`'s sweep.
std::vector<std::string> list_links(std::error_code& ec);
// Deletes every link of an interface group (see link_group()) in one request; group 0 is refused.
std::error_code delete_link_group(const std::string& netns, uint32_t group);
// Brings the loopback interface of netns up (a fresh namespace has it down).
std::error_code loopback_up(const std::string& netns);
// Deletes a link by name in netns (empty: root); idempotent (missing is success).
std::error_code delete_link(const std::string& netns, const std::string& name);

}  // namespace faultline::chaos
