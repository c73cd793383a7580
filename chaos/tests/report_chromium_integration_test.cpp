// report.html in a real browser: headless Chromium (Debian's `chromium`, installed by
// ci/install-deps.sh) loads a generated report from disk, and the test checks what it parsed
// (--dump-dom: the four SVG plots with their bands, lanes and series) and what it painted
// (--screenshot: the plots' colours are on the PNG). A missing Chromium is a failure, not a skip.
#include <faultline/chaos/runner/report.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "report_fixture.h"

namespace faultline::chaos {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> find_chromium() {
  for (const char* name : {"chromium", "chromium-browser"}) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin");
    std::string d;
    while (std::getline(dirs, d, ':'))
      if (!d.empty() && ::access((fs::path(d) / name).c_str(), X_OK) == 0)
        return (fs::path(d) / name).string();
  }
  return std::nullopt;
}

// Runs a command; its stdout, and its exit status.
std::pair<std::string, int> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p)
    return {"", -1};
  std::array<char, 65536> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    out.append(buf.data(), n);
  const int status = ::pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

std::string chromium_command(const std::string& chromium, const fs::path& profile,
                             const std::string& args) {
  // Root needs --no-sandbox; a profile of our own keeps runs apart; `timeout` bounds a hang.
  return fmt::format(
      "timeout 120 '{}' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
      "--no-first-run --no-default-browser-check --hide-scrollbars --user-data-dir='{}' {} "
      "2>/dev/null",
      chromium, profile.string(), args);
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1))
    ++n;
  return n;
}

// A decoded 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes), as RGB triples.
struct Image {
  uint32_t width = 0, height = 0;
  std::vector<std::array<uint8_t, 3>> pixels;
};

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

std::optional<Image> decode_png(const std::string& file, std::string& why) {
  std::ifstream f(file, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(f)), {});
  const auto* d = reinterpret_cast<const uint8_t*>(data.data());
  if (data.size() < 8 || data.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) {
    why = "not a PNG";
    return std::nullopt;
  }
  Image img;
  int colour_type = -1, depth = 0, interlace = 0;
  std::string idat;
  for (std::size_t pos = 8; pos + 12 <= data.size();) {
    const uint32_t len = be32(d + pos);
    const std::string type = data.substr(pos + 4, 4);
    if (pos + 12 + len > data.size())
      break;
    const uint8_t* body = d + pos + 8;
    if (type == "IHDR") {
      img.width = be32(body);
      img.height = be32(body + 4);
      depth = body[8];
      colour_type = body[9];
      interlace = body[12];
    } else if (type == "IDAT") {
      idat.append(reinterpret_cast<const char*>(body), len);
    }
    pos += 12 + len;
  }
  if (depth != 8 || (colour_type != 2 && colour_type != 6) || interlace != 0) {
    why = fmt::format("unsupported PNG: depth {} colour type {} interlace {}", depth, colour_type,
                      interlace);
    return std::nullopt;
  }
  const std::size_t bpp = colour_type == 6 ? 4 : 3;
  const std::size_t stride = img.width * bpp;
  std::vector<uint8_t> raw((stride + 1) * img.height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) !=
          Z_OK ||
      raw_len != raw.size()) {
    why = "IDAT does not inflate to the image size";
    return std::nullopt;
  }
  std::vector<uint8_t> prev(stride, 0), cur(stride);
  img.pixels.reserve(std::size_t(img.width) * img.height);
  for (uint32_t y = 0; y < img.height; ++y) {
    const uint8_t* line = raw.data() + y * (stride + 1);
    const uint8_t filter = line[0];
    for (std::size_t i = 0; i < stride; ++i) {
      const int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      int x = line[1 + i];
      switch (filter) {
        case 0:
          break;
        case 1:
          x += a;
          break;
        case 2:
          x += b;
          break;
        case 3:
          x += (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          x += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          why = "bad filter";
          return std::nullopt;
      }
      cur[i] = static_cast<uint8_t>(x);
    }
    for (uint32_t px = 0; px < img.width; ++px)
      img.pixels.push_back({cur[px * bpp], cur[px * bpp + 1], cur[px * bpp + 2]});
    std::swap(prev, cur);
  }
  return img;
}

std::size_t pixels_near(const Image& img, std::array<int, 3> rgb, int tolerance = 8) {
  std::size_t n = 0;
  for (const auto& p : img.pixels)
    if (std::abs(p[0] - rgb[0]) <= tolerance && std::abs(p[1] - rgb[1]) <= tolerance &&
        std::abs(p[2] - rgb[2]) <= tolerance)
      ++n;
  return n;
}

class ReportInChromium : public ::testing::Test {
 protected:
  void SetUp() override {
    auto found = find_chromium();
    ASSERT_TRUE(found)
        << "chromium is not installed (ci/install-deps.sh installs it: apt-get install chromium)";
    chromium_ = *found;
    dir_ = fs::temp_directory_path() / fmt::format("report-chromium-{}", ::getpid());
    fs::remove_all(dir_);
    test::make_synthetic_run(true).write_to(dir_ / "run");
    ASSERT_FALSE(write_run_report(dir_ / "run"));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string url() const { return "file://" + (dir_ / "run" / "report.html").string(); }

  std::string chromium_;
  fs::path dir_;
};

TEST_F(ReportInChromium, ParsesTheFourPlotsWithTheirData) {
  auto [dom, status] =
      run(chromium_command(chromium_, dir_ / "profile", "--dump-dom '" + url() + "'"));
  ASSERT_EQ(status, 0) << dom;
  for (const char* id : {"faults-plot", "leaders-plot", "latency-plot", "throughput-plot"})
    EXPECT_NE(dom.find(fmt::format("<svg id=\"{}\"", id)), std::string::npos) << id;
  EXPECT_EQ(count(dom, "class=\"fault-band\""), 2u);
  EXPECT_EQ(count(dom, "class=\"leader-lane\""), 2u);
  EXPECT_EQ(count(dom, "class=\"leader-seg\""), 5u);
  for (const char* s : {"latency-p50", "latency-p99", "acks", "failures", "unknown"})
    EXPECT_NE(dom.find(fmt::format("data-series=\"{}\"", s)), std::string::npos) << s;
  EXPECT_NE(dom.find("<tr class=\"anomaly\" data-kind=\"lost-write\">"), std::string::npos);
  EXPECT_NE(dom.find("<a href=\"./logs/b1.stdout\">"), std::string::npos);
}

TEST_F(ReportInChromium, PaintsThePlots) {
  const auto png = dir_ / "report.png";
  auto [out, status] = run(chromium_command(
      chromium_, dir_ / "profile",
      fmt::format("--window-size=1100,1500 --screenshot='{}' '{}'", png.string(), url())));
  ASSERT_EQ(status, 0) << out;
  ASSERT_TRUE(fs::exists(png));
  if (const char* keep = std::getenv("FAULTLINE_KEEP_SCREENSHOT"))
    fs::copy_file(png, keep, fs::copy_options::overwrite_existing);
  std::string why;
  const auto img = decode_png(png.string(), why);
  ASSERT_TRUE(img) << why;
  EXPECT_EQ(img->width, 1100u);
  // Not a blank page: many distinct colours, and most of it is not the background.
  std::set<uint32_t> colours;
  for (const auto& p : img->pixels)
    colours.insert(uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2]);
  EXPECT_GT(colours.size(), 50u);
  EXPECT_LT(pixels_near(*img, {255, 255, 255}, 0), img->pixels.size() * 97 / 100);
  // The leader lanes are solid bands in each broker's colour (b1, b2, b3)...
  EXPECT_GT(pixels_near(*img, {0x1f, 0x77, 0xb4}), 2000u);
  EXPECT_GT(pixels_near(*img, {0xff, 0x7f, 0x0e}), 2000u);
  EXPECT_GT(pixels_near(*img, {0x2c, 0xa0, 0x2c}), 2000u);
  // ... and the kill window is a translucent red band: #e45756 at 28% over white.
  auto over_white = [](int c, double a) { return int(std::lround(255 * (1 - a) + c * a)); };
  EXPECT_GT(
      pixels_near(*img, {over_white(0xe4, .28), over_white(0x57, .28), over_white(0x56, .28)}, 6),
      2000u);
}

}  // namespace
}  // namespace faultline::chaos
