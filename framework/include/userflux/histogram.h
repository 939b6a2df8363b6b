#pragma once
// Userflux::Histogram: the latency histogram every percentile in the product comes from.
//
// An HDR-style log-linear histogram (the HdrHistogram layout, unit magnitude 0) of non-negative 64-bit integer
// values, in microseconds. Values below 2 * 10^digits (rounded up to a power of two: 2048 for 3 digits) are
// counted exactly; above that, each power-of-two range is split into 2^ceil(log2(10^digits)) linear sub-buckets
// (1024 for 3 digits), so a value and the highest value of its bucket differ by less than 1/1024 of the value:
// relative error <= 10^-digits (0.1% for 3 digits).
//
// Memory is fixed at construction, whatever the number of values: one 8-byte counter per sub-bucket,
// (bucketCount + 1) * subBucketCount / 2 counters. With the defaults (3 digits, up to 1 hour = 3.6e9 us):
// 22 buckets, 23,552 counters = 188,416 bytes (184 KiB) plus under 100 bytes of totals. With 2 digits it is
// 26 KiB, with 4 digits 2.4 MiB (tst_histogram checks these figures).
//
// Exact statistics: count, min, max, mean and stdev are kept from exact running integer sums (128-bit sums of
// values and of squares), so they are exact, and merging them is exact. Only percentiles are bucketed.
//
// Ownership and threading: a plain value type (copyable, cheap to move). Not thread-safe: one thread records
// into a histogram; the usual pattern is one histogram per worker, handed over (moved/swapped) to the control
// thread, which merges. Const methods may run concurrently with each other but not with a writer. Nothing
// blocks; only the constructor, copies, merge() with a different layout and fromJson() allocate.
#include "userflux/result.h"

#include <QtGlobal>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace Userflux {

class Histogram {
public:
    // The default range: 1 hour in microseconds.
    static constexpr qint64 DefaultHighestTrackableValue = 3'600'000'000;
    // The largest range accepted (2^40 us, about 12.7 days); bounds the exact 128-bit sums (see recordN()).
    static constexpr qint64 MaxHighestTrackableValue = qint64(1) << 40;

    // `significantDigits` is clamped into [1, 5]; `highestTrackableValue` into [1, MaxHighestTrackableValue].
    // Allocates the whole counts array here (see the memory figure above), zeroed.
    explicit Histogram(int significantDigits = 3, qint64 highestTrackableValue = DefaultHighestTrackableValue);

    // Counts one value. A negative value is counted as 0, a value above highestTrackableValue() as
    // highestTrackableValue() (it is counted, not dropped; min/max/mean then see the clamped value).
    // No allocation, no lock: a handful of integer operations.
    void record(qint64 value) noexcept { recordN(value, 1); }

    // Counts `value` `count` times (same clamping as record()); count <= 0 is ignored. The exact sums hold as
    // long as the total count stays below 2^47 (values < 2^40) - below 2^63 with the default range.
    void recordN(qint64 value, qint64 count) noexcept
    {
        if (count <= 0)
            return;
        const std::uint64_t v = std::uint64_t(std::clamp<qint64>(value, 0, m_highestTrackableValue));
        const std::uint64_t n = std::uint64_t(count);
        m_counts[countsIndex(v)] += count;
        m_totalCount += count;
        m_minValue = std::min(m_minValue, v);
        m_maxValue = std::max(m_maxValue, v);
        m_sum += UInt128(v) * n;
        m_sumOfSquares += UInt128(v * v) * n; // v < 2^40, so v * v fits in 64 bits
    }

    // Adds every value of `other` into this histogram. `other` should have the same layout (same
    // significantDigits() and highestTrackableValue(), see hasSameLayout()): then the counts are added bucket by
    // bucket and the result is exactly the histogram of all values recorded into both. With a different layout
    // the merge still works but is approximate: each of other's buckets is re-counted at a representative value
    // (clamped to this range), so its percentiles carry the coarser precision of the two; count, min and max
    // (clamped to this range) stay exact, mean and stdev become bucket approximations. No allocation.
    void merge(const Histogram &other) noexcept;

    // True when merge(other) is exact: same significant digits and same highest trackable value.
    bool hasSameLayout(const Histogram &other) const noexcept;

    // Forgets every value; keeps the layout and the memory. Clears only the range of counters in use.
    void reset() noexcept;

    bool isEmpty() const noexcept { return m_totalCount == 0; }
    qint64 count() const noexcept { return m_totalCount; }
    // Exact smallest / largest recorded value (after clamping); 0 when empty.
    qint64 min() const noexcept { return isEmpty() ? 0 : qint64(m_minValue); }
    qint64 max() const noexcept { return isEmpty() ? 0 : qint64(m_maxValue); }
    // Exact arithmetic mean; 0 when empty.
    double mean() const noexcept;
    // Exact population standard deviation (divides by count, as HdrHistogram does); 0 when empty.
    double stdev() const noexcept;

    // The value at `percentile` (clamped into [0, 100]; NaN counts as 0), with HdrHistogram semantics: the
    // highest value equivalent to (in the same bucket as) the value of rank ceil(percentile / 100 * count),
    // clamped into [min(), max()]. Hence valueAtPercentile(0) == min(), valueAtPercentile(100) == max(), the
    // result never leaves [min(), max()], never decreases as the percentile grows, and is >= the exact
    // percentile and within the relative precision above it. The rank ignores floating-point noise in
    // percentile / 100 * count (99.9% of 1000 values is rank 999, not 1000). 0 when empty.
    // Scans the counters between min and max: O(number of buckets in use), no allocation.
    qint64 valueAtPercentile(double percentile) const noexcept;

    // The bucket bounds of `value` in this layout (value clamped to >= 0, not to the range): the lowest and the
    // highest value counted in the same bucket. Values below 2 * 10^digits are their own bucket.
    qint64 lowestEquivalentValue(qint64 value) const noexcept;
    qint64 highestEquivalentValue(qint64 value) const noexcept;

    int significantDigits() const noexcept { return m_significantDigits; }
    qint64 highestTrackableValue() const noexcept { return m_highestTrackableValue; }
    // Bytes held by the counts array (the figure given at the top of this file).
    std::size_t footprintBytes() const noexcept { return m_counts.size() * sizeof(qint64); }

    // {"unit": "us", "significant_digits": 3, "buckets": [[upper_value, count], ...]}: only non-empty buckets,
    // in ascending order; upper_value is the highest equivalent value of the bucket (it may exceed max(), and
    // for the top bucket highestTrackableValue()). Enough to recompute any percentile later (summary.json).
    nlohmann::json toJson() const;

    // Rebuilds a histogram from toJson() output, with the JSON's significant digits and the given range
    // (buckets above it are clamped into it, as record() does). The bucket counts are exact, so percentiles and
    // toJson() match the original's; min/max/mean/stdev are not in the JSON and are approximated from the
    // buckets: min is the lowest value of the first bucket, max the highest value of the last bucket, mean and
    // stdev use each bucket's middle value (all within the relative precision; exact below 2 * 10^digits).
    // Unknown keys are ignored. Errors (code "invalid_histogram", the message names the offending part): not
    // an object, unit other than "us", significant_digits not an integer in [1, 5], buckets not an array of
    // [upper_value, count] pairs of non-negative integers, upper values not strictly ascending or not a bucket
    // boundary of that layout, total count overflowing. Allocates; no blocking.
    static Result<Histogram> fromJson(const nlohmann::json &json,
                                      qint64 highestTrackableValue = DefaultHighestTrackableValue);

private:
    __extension__ using UInt128 = unsigned __int128;

    // HdrHistogram's indexing: the bucket is found from the position of the highest set bit (values below
    // subBucketCount all land in bucket 0 thanks to the mask), the sub-bucket from a shift.
    std::size_t countsIndex(std::uint64_t value) const noexcept
    {
        const int bucketIndex = m_leadingZeroCountBase - std::countl_zero(value | m_subBucketMask);
        const std::uint64_t subBucketIndex = value >> bucketIndex;
        return (std::size_t(bucketIndex + 1) << m_subBucketHalfCountMagnitude) + subBucketIndex
               - m_subBucketHalfCount;
    }
    std::uint64_t lowestValueAtIndex(std::size_t index) const noexcept;
    std::uint64_t highestValueAtIndex(std::size_t index) const noexcept;
    std::uint64_t middleValueAtIndex(std::size_t index) const noexcept;

    int m_significantDigits;
    qint64 m_highestTrackableValue;
    int m_subBucketHalfCountMagnitude;
    std::uint64_t m_subBucketHalfCount;
    std::uint64_t m_subBucketMask;
    int m_leadingZeroCountBase;
    std::vector<qint64> m_counts;

    qint64 m_totalCount = 0;
    std::uint64_t m_minValue = UINT64_MAX; // UINT64_MAX / 0 while empty, so recordN() needs no branch
    std::uint64_t m_maxValue = 0;
    UInt128 m_sum = 0;
    UInt128 m_sumOfSquares = 0;
};

// The latency block of summary.json from a histogram of microseconds: {"count", "min", "mean", "stdev", "p50",
// "p75", "p90", "p95", "p99", "p99_9", "max"}, every value but count in milliseconds rounded to 3 decimals (so,
// to the microsecond), count an integer. An empty histogram gives {"count": 0} (no NaN, no null). Pure.
nlohmann::json latencyBlockMs(const Histogram &histogram);

} // namespace Userflux
