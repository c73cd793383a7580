#include "faultline/cluster/shared_bytes.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace faultline::cluster {
namespace {

TEST(SharedBytes, TakesAStringsStorageAndComparesByContent) {
  std::string text(1000, 'a');
  const char* storage = text.data();
  const SharedBytes bytes(std::move(text));
  EXPECT_EQ(bytes.data(), storage) << "a moved-in string is not copied";
  EXPECT_EQ(bytes.size(), 1000u);
  EXPECT_EQ(bytes, std::string(1000, 'a'));
  EXPECT_EQ(bytes, SharedBytes(std::string(1000, 'a')));
  EXPECT_FALSE(bytes == std::string(999, 'a'));
  EXPECT_EQ(bytes.str(), std::string(1000, 'a'));
}

TEST(SharedBytes, CopiesAndSlicesShareStorageThatOutlivesTheOriginal) {
  auto original = std::make_unique<SharedBytes>(std::string("0123456789"));
  const SharedBytes copy = *original;
  const SharedBytes middle = original->slice(3, 4);
  EXPECT_EQ(copy.data(), original->data());
  EXPECT_EQ(middle.data(), original->data() + 3);
  original.reset();
  EXPECT_EQ(copy, std::string_view("0123456789"));
  EXPECT_EQ(middle, std::string_view("3456"));
  EXPECT_EQ(middle.slice(1, 2), std::string_view("45"));
}

TEST(SharedBytes, EmptyBytesAndEmptySlices) {
  const SharedBytes none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none, std::string_view());
  EXPECT_TRUE(SharedBytes(std::string()).empty());
  const SharedBytes some(std::string("abc"));
  EXPECT_TRUE(some.slice(3, 0).empty());
  EXPECT_TRUE(some.slice(0, 0).empty());
  EXPECT_TRUE(SharedBytes::allocate(0).first.empty());
}

TEST(SharedBytes, AnAllocatedBufferIsFilledThroughItsSpanAndThenShared) {
  auto [bytes, space] = SharedBytes::allocate(4096);
  ASSERT_EQ(space.size(), 4096u);
  EXPECT_EQ(space.data(), bytes.data());
  std::memset(space.data(), 'z', space.size());
  const SharedBytes tail = bytes.slice(4000, 96);
  EXPECT_EQ(tail, std::string(96, 'z'));
  EXPECT_EQ(bytes.span().size(), 4096u);
}

}  // namespace
}  // namespace faultline::cluster
