#include "faultline/chaos/prometheus_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <thread>

#include "faultline/chaos/cluster_harness.h"
#include "faultline/chaos/supervisor.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using checker::Expected;

namespace {

std::string duration_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000)
                               : fmt::format("{}ms", d.count());
}

std::error_code write_atomically(const fs::path& p, const std::string& text) {
  auto tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out)
      return std::make_error_code(std::errc::io_error);
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);  // file_sd watches the directory: a rename is one complete update
  return ec;
}

struct HttpAnswer {
  long status = 0;
  std::string body;
};

size_t append_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// GET on loopback. Proxies from the environment are ignored: the server is local.
Expected<HttpAnswer, std::string> http_get(const std::string& url,
                                           std::chrono::milliseconds timeout) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl)
    return std::string("curl_easy_init failed");
  HttpAnswer answer;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &answer.body);
  if (auto rc = curl_easy_perform(curl.get()); rc != CURLE_OK)
    return fmt::format("GET {}: {}", url, curl_easy_strerror(rc));
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

std::string url_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// Prometheus sends sample values as strings ("1.5", "NaN", "+Inf").
double sample_value(const nlohmann::json& v) {
  const auto& s = v.get_ref<const std::string&>();
  return std::strtod(s.c_str(), nullptr);
}

std::map<std::string, std::string> labels_of(const nlohmann::json& metric) {
  std::map<std::string, std::string> labels;
  for (const auto& [k, v] : metric.items())
    labels[k] = v.get<std::string>();
  return labels;
}

// The "data" object of a successful API answer, or why there is none.
Expected<nlohmann::json, std::string> api_data(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return std::string("not JSON: ") + std::string(body.substr(0, 200));
  if (j.value("status", "") != "success")
    return fmt::format("{}: {}", j.value("errorType", "error"),
                       j.value("error", std::string(body)));
  return j["data"];
}

// A finite number, or null (a quantile of an empty histogram is NaN).
nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

}  // namespace

std::string prometheus_config(std::chrono::milliseconds scrape_interval,
                              const fs::path& targets_dir) {
  std::string yml = fmt::format(
      "# Written by faultline for one run; targets are in {}/<job>.json (file_sd).\n"
      "global:\n"
      "  scrape_interval: {}\n"
      "  scrape_timeout: {}\n"
      "  evaluation_interval: {}\n"
      "scrape_configs:\n",
      targets_dir.string(), duration_text(scrape_interval), duration_text(scrape_interval),
      duration_text(scrape_interval));
  for (const auto& job : scrape_jobs()) {
    yml += fmt::format(
        "  - job_name: {}\n"
        "    file_sd_configs:\n"
        "      - files: ['{}']\n"
        "        refresh_interval: 5s\n",
        job, (targets_dir / (job + ".json")).string());
  }
  return yml;
}

nlohmann::json file_sd_document(const std::vector<ScrapeTarget>& targets, std::string_view job) {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& t : targets) {
    if (t.job != job)
      continue;
    groups.push_back({{"targets", {t.address}}, {"labels", t.labels}});
  }
  return groups;
}

double counter_total(const std::vector<double>& samples) {
  double total = 0;
  double previous = 0;
  for (double v : samples) {
    total += v >= previous ? v - previous : v;
    previous = v;
  }
  return total;
}

Expected<std::vector<PromSample>, std::string> parse_instant_vector(std::string_view body) {
  auto data = api_data(body);
  if (!data)
    return data.error();
  std::vector<PromSample> out;
  try {
    auto type = data->value("resultType", "");
    const auto& result = (*data)["result"];
    if (type == "scalar") {
      out.push_back({{}, sample_value(result.at(1))});
    } else if (type == "vector") {
      for (const auto& r : result)
        out.push_back({labels_of(r.at("metric")), sample_value(r.at("value").at(1))});
    } else {
      return "expected an instant vector, got " + type;
    }
  } catch (const nlohmann::json::exception& e) {
    return std::string("malformed query result: ") + e.what();
  }
  return out;
}

Expected<std::vector<PromSeries>, std::string> parse_range_vector(std::string_view body) {
  auto data = api_data(body);
  if (!data)
    return data.error();
  std::vector<PromSeries> out;
  try {
    if (data->value("resultType", "") != "matrix")
      return "expected a range vector, got " + data->value("resultType", "");
    for (const auto& r : (*data)["result"]) {
      PromSeries s{labels_of(r.at("metric")), {}};
      for (const auto& v : r.at("values"))
        s.samples.emplace_back(v.at(0).get<double>(), sample_value(v.at(1)));
      out.push_back(std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    return std::string("malformed query result: ") + e.what();
  }
  return out;
}

uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::unique_ptr<PrometheusServer> PrometheusServer::start(Supervisor& supervisor,
                                                          PrometheusOptions options,
                                                          const std::vector<ScrapeTarget>& targets,
                                                          std::string& why) {
  std::error_code ec;
  if (!fs::exists(options.binary, ec)) {
    why = fmt::format("{} not found (Debian package `prometheus`; ci/install-deps.sh installs it)",
                      options.binary.string());
    return nullptr;
  }
  if (options.data_dir.empty())
    options.data_dir = options.dir / "data";
  options.dir = fs::absolute(options.dir);
  options.data_dir = fs::absolute(options.data_dir);
  fs::create_directories(options.dir / "targets", ec);
  if (!ec)
    fs::create_directories(options.data_dir, ec);
  if (ec) {
    why = fmt::format("cannot create {}: {}", options.dir.string(), ec.message());
    return nullptr;
  }
  std::unique_ptr<PrometheusServer> p(new PrometheusServer(supervisor, options));
  for (const auto& job : scrape_jobs()) {
    // Every job's file exists from the start (an empty list until it has targets).
    if (auto e = write_atomically(options.dir / "targets" / (job + ".json"), "[]\n")) {
      why = fmt::format("cannot write the targets of {}: {}", job, e.message());
      return nullptr;
    }
  }
  if (auto e = p->set_targets(targets)) {
    why = "cannot write the targets: " + e.message();
    return nullptr;
  }
  auto config = options.dir / "prometheus.yml";
  if (auto e = write_atomically(
          config, prometheus_config(options.scrape_interval, options.dir / "targets"))) {
    why = fmt::format("cannot write {}: {}", config.string(), e.message());
    return nullptr;
  }
  // The free port can be taken between the probe and the bind: the server then exits, and we try
  // another one.
  for (int attempt = 0; attempt < 3; ++attempt) {
    p->port_ = free_loopback_port();
    p->client_ = PrometheusClient(fmt::format("http://127.0.0.1:{}", p->port_));
    ProcessSpec spec{options.process_name,
                     {options.binary.string(), "--config.file=" + config.string(),
                      "--storage.tsdb.path=" + options.data_dir.string(),
                      fmt::format("--web.listen-address=127.0.0.1:{}", p->port_),
                      "--storage.tsdb.retention.time=30d", "--log.level=warn"},
                     {},
                     std::nullopt,
                     std::nullopt};
    if (auto e = supervisor.start(spec)) {
      why = "starting prometheus failed: " + e.message();
      return nullptr;
    }
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (supervisor.is_running(options.process_name) &&
           std::chrono::steady_clock::now() < deadline) {
      auto ready = http_get(p->url() + "/-/ready", 1s);
      if (ready && ready->status == 200) {
        spdlog::info("event=prometheus_ready url={} dir={}", p->url(), options.dir.string());
        return p;
      }
      std::this_thread::sleep_for(50ms);
    }
    if (supervisor.is_running(options.process_name)) {
      (void)supervisor.stop(options.process_name);
      why = fmt::format("prometheus not ready on {} within 30 s (log: {})", p->url(),
                        supervisor.stderr_path(options.process_name).string());
      return nullptr;
    }
    why = fmt::format("prometheus exited at start (log: {})",
                      supervisor.stderr_path(options.process_name).string());
  }
  p->stopped_ = true;
  return nullptr;
}

PrometheusServer::~PrometheusServer() {
  (void)stop();
}

std::error_code PrometheusServer::set_targets(const std::vector<ScrapeTarget>& targets) {
  for (const auto& job : scrape_jobs()) {
    auto doc = file_sd_document(targets, job);
    if (doc == file_sd_document(targets_, job))
      continue;  // start() wrote every file as []
    if (auto e = write_atomically(options_.dir / "targets" / (job + ".json"), doc.dump(2) + "\n"))
      return e;
  }
  targets_ = targets;
  return {};
}

Expected<std::vector<PromSample>, std::string> PrometheusClient::query(
    std::string_view promql) const {
  auto answer = http_get(url_ + "/api/v1/query?query=" + url_escape(promql), 10s);
  if (!answer)
    return answer.error();
  auto parsed = parse_instant_vector(answer->body);
  if (!parsed)
    return fmt::format("{}: {}", promql, parsed.error());
  return parsed;
}

Expected<std::vector<PromSeries>, std::string> PrometheusClient::query_range_vector(
    std::string_view selector) const {
  auto answer = http_get(url_ + "/api/v1/query?query=" + url_escape(selector), 10s);
  if (!answer)
    return answer.error();
  auto parsed = parse_range_vector(answer->body);
  if (!parsed)
    return fmt::format("{}: {}", selector, parsed.error());
  return parsed;
}

std::error_code PrometheusClient::wait_scraped(std::chrono::system_clock::time_point since,
                                               size_t targets,
                                               std::chrono::milliseconds timeout) const {
  if (targets == 0)
    return {};
  // `up` is written at every scrape, failed or not, with the scrape's start time.
  double t = std::chrono::duration<double>(since.time_since_epoch()).count();
  auto promql = fmt::format("count(timestamp(up) > {:.3f})", t);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto r = query(promql);
    if (r && !r->empty() && r->front().value >= double(targets))
      return {};
    if (std::chrono::steady_clock::now() > deadline) {
      spdlog::warn("event=prometheus_scrape_wait_timeout query=\"{}\" error=\"{}\"", promql,
                   r ? "" : r.error());
      return std::make_error_code(std::errc::timed_out);
    }
    std::this_thread::sleep_for(100ms);
  }
}

std::error_code PrometheusServer::stop() {
  if (stopped_)
    return {};
  stopped_ = true;
  return supervisor_.stop(options_.process_name, 10s);
}

std::vector<ScrapeTarget> cluster_scrape_targets(ClusterHarness& harness,
                                                 uint16_t harness_metrics_port) {
  std::vector<ScrapeTarget> targets;
  auto supervised = harness.supervisor().names();
  for (const auto& n : harness.topology().nodes()) {
    auto at = [&](const std::optional<Ipv4>& a) {
      return fmt::format("{}:{}", a->str(), kNodeMetricsPort);
    };
    switch (n.role) {
      case NodeRole::controller:
        targets.push_back({"controller", at(n.int_address), {{"node", n.id}}});
        break;
      case NodeRole::broker:
        targets.push_back(
            {"broker", at(n.int_address), {{"node", n.id}, {"broker", std::to_string(n.index)}}});
        break;
      case NodeRole::probe:
        if (n.ext_address &&
            std::find(supervised.begin(), supervised.end(), n.id) != supervised.end())
          targets.push_back({"probe", at(n.ext_address), {{"node", n.id}}});
        break;
      case NodeRole::clients:
        break;
    }
  }
  if (harness_metrics_port != 0)
    targets.push_back(
        {"harness", fmt::format("127.0.0.1:{}", harness_metrics_port), {{"node", "harness"}}});
  return targets;
}

Expected<nlohmann::json, std::string> query_failover_report(const PrometheusServer& server,
                                                            std::chrono::seconds window) {
  nlohmann::json report{{"url", server.url()},
                        {"data_dir", server.options().data_dir.string()},
                        {"scrape_interval_s",
                         std::chrono::duration<double>(server.options().scrape_interval).count()}};
  nlohmann::json targets = nlohmann::json::array();
  for (const auto& t : server.targets())
    targets.push_back({{"job", t.job}, {"address", t.address}, {"labels", t.labels}});
  report["targets"] = targets;

  // Runs `promql` and stores each series' value as into[<its `label`>][field].
  auto collect = [&](const std::string& promql, const std::string& label, nlohmann::json& into,
                     const std::string& field) -> std::optional<std::string> {
    auto r = server.client().query(promql);
    if (!r)
      return r.error();
    for (const auto& s : *r) {
      auto it = s.labels.find(label);
      into[it == s.labels.end() ? "all" : it->second][field] = number_or_null(s.value);
    }
    return std::nullopt;
  };

  // The failover histogram, per fault kind and over all faults ("all").
  const std::string failover = "faultline_partition_unavailable_seconds";
  nlohmann::json by_fault = nlohmann::json::object();
  for (const auto& by : {std::string("fault"), std::string()}) {
    std::string group = by.empty() ? "" : by + ", ";
    const std::pair<std::string, std::string> queries[] = {
        {"count", fmt::format("sum by ({}) ({}_count)", by, failover)},
        {"sum_s", fmt::format("sum by ({}) ({}_sum)", by, failover)},
        {"p50_s",
         fmt::format("histogram_quantile(0.5, sum by ({}le) ({}_bucket))", group, failover)},
        {"p99_s",
         fmt::format("histogram_quantile(0.99, sum by ({}le) ({}_bucket))", group, failover)}};
    for (const auto& [field, promql] : queries)
      if (auto error = collect(promql, by, by_fault, field))
        return *error;
  }
  report["failover"] = by_fault;

  nlohmann::json faults = nlohmann::json::object();
  auto injected = server.client().query("sum by (kind) (faultline_faults_total)");
  if (!injected)
    return injected.error();
  for (const auto& s : *injected)
    if (s.labels.count("kind"))
      faults[s.labels.at("kind")] = s.value;
  report["faults"] = faults;

  // Elections: counted from the raw samples, so the counts of a restarted controller add up.
  auto raw = server.client().query_range_vector(
      fmt::format("faultline_elections_total[{}s]", window.count()));
  if (!raw)
    return raw.error();
  std::map<std::string, double> elections;
  for (const auto& series : *raw) {
    std::vector<double> values;
    for (const auto& sample : series.samples)
      values.push_back(sample.second);
    auto it = series.labels.find("reason");
    elections[it == series.labels.end() ? "" : it->second] += counter_total(values);
  }
  report["elections"] = elections;

  // The controller's trigger-to-commit time per reason (its current process's histogram).
  nlohmann::json election_seconds = nlohmann::json::object();
  for (const auto& [field, q] : {std::pair{"p50_s", "0.5"}, std::pair{"p99_s", "0.99"}}) {
    auto promql = fmt::format(
        "histogram_quantile({}, sum by (reason, le) (faultline_election_seconds_bucket))", q);
    if (auto error = collect(promql, "reason", election_seconds, field))
      return *error;
  }
  report["election_seconds"] = election_seconds;
  return report;
}

nlohmann::json final_failover_report(const PrometheusServer& server, std::chrono::seconds window) {
  auto scraped = server.wait_scraped(
      std::chrono::system_clock::now(),
      std::max<std::chrono::milliseconds>(10s, 5 * server.options().scrape_interval));
  auto report = query_failover_report(server, window);
  nlohmann::json out =
      report ? *report : nlohmann::json{{"url", server.url()}, {"error", report.error()}};
  out["final_scrape"] = !scraped;
  return out;
}

}  // namespace faultline::chaos
