#include "userflux/histogram.h"

#include <QString>

#include <cfloat>
#include <cmath>
#include <limits>
#include <optional>

namespace Userflux {

namespace {

Error histogramError(const QString &message)
{
    return Error{QStringLiteral("invalid_histogram"), message};
}

// A non-negative JSON integer, whichever way nlohmann stores it: parsed text holds non-negative integers as
// unsigned, a json built in memory from qint64 (as toJson() does) holds them as signed.
std::optional<std::uint64_t> nonNegativeInteger(const nlohmann::json &value)
{
    if (value.is_number_unsigned())
        return value.get<std::uint64_t>();
    if (value.is_number_integer() && value.get<std::int64_t>() >= 0)
        return std::uint64_t(value.get<std::int64_t>());
    return std::nullopt;
}

} // namespace

Histogram::Histogram(int significantDigits, qint64 highestTrackableValue)
    : m_significantDigits(std::clamp(significantDigits, 1, 5))
    , m_highestTrackableValue(std::clamp<qint64>(highestTrackableValue, 1, MaxHighestTrackableValue))
{
    // HdrHistogram's layout with a unit magnitude of 0 (the lowest discernible value is 1 us): every value below
    // 2 * 10^digits must be counted exactly, so the sub-bucket count is that rounded up to a power of two; each
    // further bucket covers twice the range of the previous with the upper half of the sub-buckets, which keeps
    // the relative width of every bucket below 1 / subBucketHalfCount <= 10^-digits.
    std::uint64_t largestValueWithSingleUnitResolution = 2;
    for (int i = 0; i < m_significantDigits; ++i)
        largestValueWithSingleUnitResolution *= 10;
    const int subBucketCountMagnitude = int(std::bit_width(largestValueWithSingleUnitResolution - 1));
    m_subBucketHalfCountMagnitude = subBucketCountMagnitude - 1;
    const std::uint64_t subBucketCount = std::uint64_t(1) << subBucketCountMagnitude;
    m_subBucketHalfCount = subBucketCount / 2;
    m_subBucketMask = subBucketCount - 1;
    m_leadingZeroCountBase = 64 - m_subBucketHalfCountMagnitude - 1;

    // Enough buckets that highestTrackableValue (and so every clamped value) has a counter.
    std::uint64_t smallestUntrackableValue = subBucketCount;
    std::size_t bucketCount = 1;
    while (smallestUntrackableValue <= std::uint64_t(m_highestTrackableValue)) {
        smallestUntrackableValue <<= 1;
        ++bucketCount;
    }
    m_counts.assign((bucketCount + 1) * m_subBucketHalfCount, 0);
}

std::uint64_t Histogram::lowestValueAtIndex(std::size_t index) const noexcept
{
    // Inverse of countsIndex(): indexes below subBucketCount are bucket 0 (exact values); above, each run of
    // subBucketHalfCount indexes is the upper half of the sub-buckets of the next bucket.
    const std::size_t bucketIndexPlusOne = index >> m_subBucketHalfCountMagnitude;
    if (bucketIndexPlusOne <= 1)
        return index;
    const std::uint64_t subBucketIndex = (index & (m_subBucketHalfCount - 1)) + m_subBucketHalfCount;
    return subBucketIndex << (bucketIndexPlusOne - 1);
}

std::uint64_t Histogram::highestValueAtIndex(std::size_t index) const noexcept
{
    const std::size_t bucketIndexPlusOne = index >> m_subBucketHalfCountMagnitude;
    const std::uint64_t width = bucketIndexPlusOne <= 1 ? 1 : std::uint64_t(1) << (bucketIndexPlusOne - 1);
    return lowestValueAtIndex(index) + width - 1;
}

std::uint64_t Histogram::middleValueAtIndex(std::size_t index) const noexcept
{
    // As HdrHistogram's medianEquivalentValue: the representative used when only the bucket is known.
    const std::uint64_t lowest = lowestValueAtIndex(index);
    return lowest + (highestValueAtIndex(index) - lowest + 1) / 2;
}

qint64 Histogram::lowestEquivalentValue(qint64 value) const noexcept
{
    return qint64(lowestValueAtIndex(countsIndex(std::uint64_t(std::max<qint64>(value, 0)))));
}

qint64 Histogram::highestEquivalentValue(qint64 value) const noexcept
{
    return qint64(highestValueAtIndex(countsIndex(std::uint64_t(std::max<qint64>(value, 0)))));
}

bool Histogram::hasSameLayout(const Histogram &other) const noexcept
{
    return m_significantDigits == other.m_significantDigits
           && m_highestTrackableValue == other.m_highestTrackableValue;
}

void Histogram::merge(const Histogram &other) noexcept
{
    if (other.isEmpty())
        return;
    // Every non-zero counter of a histogram lies between the indexes of its min and max, so only that stretch
    // is visited: a per-second histogram of a narrow latency band merges in a few hundred additions.
    const std::size_t first = other.countsIndex(other.m_minValue);
    const std::size_t last = other.countsIndex(other.m_maxValue);
    if (hasSameLayout(other)) {
        for (std::size_t i = first; i <= last; ++i)
            m_counts[i] += other.m_counts[i];
        m_totalCount += other.m_totalCount;
        m_minValue = std::min(m_minValue, other.m_minValue);
        m_maxValue = std::max(m_maxValue, other.m_maxValue);
        m_sum += other.m_sum;
        m_sumOfSquares += other.m_sumOfSquares;
        return;
    }
    // Different layout: re-count each bucket at its middle value. Keeping that value inside other's [min, max]
    // keeps every counter we touch between the indexes of our new min and max, which reset(), merge() and the
    // percentile scan rely on. The exact min/max are then restored (clamped like record() would).
    for (std::size_t i = first; i <= last; ++i) {
        if (other.m_counts[i] != 0) {
            const std::uint64_t v = std::clamp(other.middleValueAtIndex(i), other.m_minValue, other.m_maxValue);
            recordN(qint64(v), other.m_counts[i]);
        }
    }
    const auto clampToRange = [this](std::uint64_t v) {
        return std::min(v, std::uint64_t(m_highestTrackableValue));
    };
    m_minValue = std::min(m_minValue, clampToRange(other.m_minValue));
    m_maxValue = std::max(m_maxValue, clampToRange(other.m_maxValue));
}

void Histogram::reset() noexcept
{
    if (!isEmpty()) {
        // Only the used stretch is dirty; clearing it rather than the whole array matters when the control
        // thread recycles per-second histograms of several workers and endpoints.
        const std::size_t first = countsIndex(m_minValue);
        const std::size_t last = countsIndex(m_maxValue);
        std::fill(m_counts.begin() + std::ptrdiff_t(first), m_counts.begin() + std::ptrdiff_t(last) + 1, 0);
    }
    m_totalCount = 0;
    m_minValue = UINT64_MAX;
    m_maxValue = 0;
    m_sum = 0;
    m_sumOfSquares = 0;
}

double Histogram::mean() const noexcept
{
    if (isEmpty())
        return 0.0;
    return double(static_cast<long double>(m_sum) / static_cast<long double>(m_totalCount));
}

double Histogram::stdev() const noexcept
{
    if (isEmpty())
        return 0.0;
    // sum((x - mean)^2) without the cancellation of sumsq/n - mean^2: with q = floor(sum / n) and r = sum mod n,
    //   sum((x - q)^2)    = sumsq - q * (2 * sum - n * q) = sumsq - q * (sum + r)     (exact in 128 bits,
    //                       since q * (sum + r) <= sum^2 / n + sum <= sumsq + sum),
    //   sum((x - mean)^2) = sum((x - q)^2) - n * (r / n)^2 = sum((x - q)^2) - r^2 / n.
    // The only rounding is in converting the (small) result to long double, so stdev is exact to ~1e-18 relative
    // even for a 1-hour mean with a 1 us spread.
    const UInt128 n = UInt128(m_totalCount);
    const UInt128 q = m_sum / n;
    const UInt128 r = m_sum % n;
    const UInt128 squaresAroundQ = m_sumOfSquares - q * (m_sum + r);
    const long double rl = static_cast<long double>(r);
    const long double m2 = static_cast<long double>(squaresAroundQ) - rl * rl / static_cast<long double>(n);
    if (m2 <= 0)
        return 0.0;
    return double(std::sqrt(m2 / static_cast<long double>(n)));
}

qint64 Histogram::valueAtPercentile(double percentile) const noexcept
{
    if (isEmpty())
        return 0;
    if (!(percentile > 0.0)) // also NaN
        return qint64(m_minValue);
    if (percentile >= 100.0)
        return qint64(m_maxValue);

    // rank = ceil(percentile / 100 * count), but percentiles like 99.9 are not exact in binary and the product
    // can land a hair above an integer (99.9% of 1000 = 999.0000000000001); that noise must not push the rank
    // to the next value. Anything within a few ulps of an integer is taken as that integer; a real fraction
    // that small would need more significant digits than a double holds.
    const double exactRank = percentile / 100.0 * double(m_totalCount);
    const double floorRank = std::floor(exactRank);
    qint64 rank = qint64(floorRank);
    if (exactRank - floorRank > 4 * DBL_EPSILON * std::max(exactRank, 1.0))
        ++rank;
    rank = std::clamp<qint64>(rank, 1, m_totalCount);

    const std::size_t first = countsIndex(m_minValue);
    const std::size_t last = countsIndex(m_maxValue);
    qint64 seen = 0;
    std::size_t i = first;
    for (; i < last; ++i) {
        seen += m_counts[i];
        if (seen >= rank)
            break;
    }
    // The bucket's highest value can lie above max (or, for the first bucket, is always >= min); clamping keeps
    // min <= p50 <= ... <= max true for every histogram, as the run contract requires.
    return qint64(std::clamp(highestValueAtIndex(i), m_minValue, m_maxValue));
}

nlohmann::json Histogram::toJson() const
{
    nlohmann::json buckets = nlohmann::json::array();
    if (!isEmpty()) {
        const std::size_t last = countsIndex(m_maxValue);
        for (std::size_t i = countsIndex(m_minValue); i <= last; ++i) {
            if (m_counts[i] != 0)
                buckets.push_back(nlohmann::json::array({qint64(highestValueAtIndex(i)), m_counts[i]}));
        }
    }
    return nlohmann::json{{"unit", "us"}, {"significant_digits", m_significantDigits}, {"buckets", buckets}};
}

Result<Histogram> Histogram::fromJson(const nlohmann::json &json, qint64 highestTrackableValue)
{
    if (!json.is_object())
        return histogramError(QStringLiteral("histogram: expected an object with unit, significant_digits and "
                                             "buckets"));
    const auto unit = json.find("unit");
    if (unit == json.end() || !unit->is_string() || unit->get<std::string>() != "us")
        return histogramError(QStringLiteral("histogram.unit: must be \"us\""));
    const auto digits = json.find("significant_digits");
    if (digits == json.end() || !digits->is_number_integer() || digits->get<qint64>() < 1
        || digits->get<qint64>() > 5)
        return histogramError(QStringLiteral("histogram.significant_digits: must be an integer from 1 to 5"));
    const auto buckets = json.find("buckets");
    if (buckets == json.end() || !buckets->is_array())
        return histogramError(QStringLiteral("histogram.buckets: must be an array of [upper_value, count]"));

    Histogram histogram(int(digits->get<qint64>()), highestTrackableValue);
    // Values of this size and above are beyond any layout's index arithmetic (and 2^40 us ranges).
    constexpr std::uint64_t valueLimit = std::uint64_t(1) << 62;
    std::uint64_t previousUpper = 0;
    std::uint64_t firstLowest = 0;
    std::uint64_t lastUpper = 0;
    qint64 total = 0;
    for (std::size_t k = 0; k < buckets->size(); ++k) {
        const nlohmann::json &bucket = (*buckets)[k];
        const QString where = QStringLiteral("histogram.buckets[%1]").arg(k);
        if (!bucket.is_array() || bucket.size() != 2 || !bucket[0].is_number_integer()
            || !bucket[1].is_number_integer())
            return histogramError(where + QStringLiteral(": must be a pair of integers [upper_value, count]"));
        const std::optional<std::uint64_t> upperValue = nonNegativeInteger(bucket[0]);
        if (!upperValue || *upperValue >= valueLimit)
            return histogramError(where + QStringLiteral(": upper_value must be a non-negative integer below 2^62"));
        const std::optional<std::uint64_t> countValue = nonNegativeInteger(bucket[1]);
        if (!countValue || *countValue > std::uint64_t(std::numeric_limits<qint64>::max()))
            return histogramError(where + QStringLiteral(": count must be a non-negative integer"));
        const std::uint64_t upper = *upperValue;
        const qint64 count = qint64(*countValue);
        if (k > 0 && upper <= previousUpper)
            return histogramError(where + QStringLiteral(": upper values must be strictly ascending (%1 after %2)")
                                              .arg(upper)
                                              .arg(previousUpper));
        previousUpper = upper;
        // The layout depends only on the digits, so a foreign or corrupted file shows up as an upper value that
        // is not the top of a bucket; refusing it beats silently shifting every percentile.
        const std::size_t index = histogram.countsIndex(upper);
        if (histogram.highestValueAtIndex(index) != upper)
            return histogramError(
                where + QStringLiteral(": %1 is not the upper value of a bucket with %2 significant digits (is the "
                                       "histogram from another layout?)")
                            .arg(upper)
                            .arg(histogram.m_significantDigits));
        if (count == 0)
            continue;
        if (count > std::numeric_limits<qint64>::max() - total)
            return histogramError(where + QStringLiteral(": the total count overflows"));
        total += count;
        if (histogram.isEmpty())
            firstLowest = histogram.lowestValueAtIndex(index);
        lastUpper = upper;
        // The middle value stands for the bucket in the sums; recordN() also clamps buckets above the range.
        histogram.recordN(qint64(histogram.middleValueAtIndex(index)), count);
    }
    if (!histogram.isEmpty()) {
        // The bucket bounds are the best min/max the JSON allows; they keep [min, max] around the true range, so
        // percentiles come out as the bucket upper values exactly as the original reported them (up to its clamp
        // at the true max).
        const std::uint64_t highest = std::uint64_t(histogram.m_highestTrackableValue);
        histogram.m_minValue = std::min(firstLowest, highest);
        histogram.m_maxValue = std::min(lastUpper, highest);
    }
    return histogram;
}

nlohmann::json latencyBlockMs(const Histogram &histogram)
{
    if (histogram.isEmpty())
        return nlohmann::json{{"count", 0}};
    // Microseconds to milliseconds with 3 decimals is rounding to the whole microsecond, then dividing by 1000
    // (the nearest double to the 3-decimal figure, which is what JSON prints).
    const auto ms = [](double us) { return std::round(us) / 1000.0; };
    const auto p = [&](double percentile) { return ms(double(histogram.valueAtPercentile(percentile))); };
    return nlohmann::json{
        {"count", histogram.count()},
        {"min", ms(double(histogram.min()))},
        {"mean", ms(histogram.mean())},
        {"stdev", ms(histogram.stdev())},
        {"p50", p(50)},
        {"p75", p(75)},
        {"p90", p(90)},
        {"p95", p(95)},
        {"p99", p(99)},
        {"p99_9", p(99.9)},
        {"max", ms(double(histogram.max()))},
    };
}

} // namespace Userflux
