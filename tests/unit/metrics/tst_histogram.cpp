// Userflux::Histogram against exact statistics computed by sorting: every percentile the product reports comes
// from this class, so each distribution is checked for the exact HdrHistogram semantics, not just closeness.
#include "userflux/histogram.h"

#include <QTest>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

using Userflux::Histogram;

// QCOMPARE cannot print a json; this shows both sides when they differ.
#define COMPARE_JSON(actual, expected)                                                                           \
    do {                                                                                                         \
        const nlohmann::json a_ = (actual);                                                                      \
        const nlohmann::json e_ = (expected);                                                                    \
        QVERIFY2(a_ == e_, qPrintable(QStringLiteral("actual %1\nexpected %2")                                  \
                                          .arg(QString::fromStdString(a_.dump().substr(0, 2000)),                \
                                               QString::fromStdString(e_.dump().substr(0, 2000)))));             \
    } while (false)

namespace {

constexpr qint64 Ms = 1000; // the histogram counts microseconds

// Percentiles as integer parts per million, so the exact rank ceil(p / 100 * n) is computed in integers here,
// independently of the histogram's floating-point rank.
std::vector<qint64> percentileGridPpm()
{
    std::vector<qint64> ppm = {0,        1,        10,       100,      1'000,    10'000,   100'000,
                               250'000,  333'333,  500'000,  666'667,  750'000,  900'000,  950'000,
                               990'000,  999'000,  999'900,  999'990,  999'999,  100'000'000 / 100};
    ppm.push_back(100'000'000); // 100%
    for (qint64 p = 0; p <= 100'000'000; p += 50'000) // every 0.05%
        ppm.push_back(p);
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<qint64> any(0, 100'000'000);
    for (int i = 0; i < 200; ++i)
        ppm.push_back(any(rng));
    std::sort(ppm.begin(), ppm.end());
    ppm.erase(std::unique(ppm.begin(), ppm.end()), ppm.end());
    return ppm;
}

double ppmToPercent(qint64 ppm)
{
    return double(ppm) / 1e6;
}

// The value of rank ceil(ppm / 1e8 * n) (at least 1) in sorted values.
qint64 exactPercentile(const std::vector<qint64> &sorted, qint64 ppm)
{
    const auto n = qint64(sorted.size());
    const __int128 numerator = __int128(ppm) * n;
    qint64 rank = qint64((numerator + 100'000'000 - 1) / 100'000'000);
    rank = std::clamp<qint64>(rank, 1, n);
    return sorted[std::size_t(rank - 1)];
}

long double exactMean(const std::vector<qint64> &values)
{
    long double sum = 0;
    for (qint64 v : values)
        sum += v;
    return sum / values.size();
}

long double exactStdev(const std::vector<qint64> &values)
{
    const long double mean = exactMean(values);
    long double squares = 0;
    for (qint64 v : values)
        squares += (v - mean) * (v - mean);
    return std::sqrt(squares / values.size());
}

bool closeRelative(long double actual, long double expected, long double tolerance)
{
    return std::fabs(actual - expected) <= tolerance * std::max<long double>(std::fabs(expected), 1.0L);
}

std::vector<qint64> generate(const QByteArray &name)
{
    std::mt19937_64 rng(20240611);
    std::vector<qint64> values;
    const int n = 200'000;
    values.reserve(n);
    const auto nonNegative = [](double v) { return std::max<qint64>(0, std::llround(v)); };
    if (name == "uniform") {
        std::uniform_int_distribution<qint64> d(0, 2'000'000);
        for (int i = 0; i < n; ++i)
            values.push_back(d(rng));
    } else if (name == "lognormal-long-tail") {
        std::lognormal_distribution<double> d(std::log(20'000.0), 1.3);
        for (int i = 0; i < n; ++i)
            values.push_back(std::min<qint64>(nonNegative(d(rng)), Histogram::DefaultHighestTrackableValue));
    } else if (name == "constant") {
        values.assign(n, 12'345);
    } else if (name == "bimodal") {
        std::normal_distribution<double> fast(5'000, 500);
        std::normal_distribution<double> slow(200'000, 30'000);
        std::bernoulli_distribution isSlow(0.2);
        for (int i = 0; i < n; ++i)
            values.push_back(nonNegative(isSlow(rng) ? slow(rng) : fast(rng)));
    } else if (name == "small-exact-range") {
        std::uniform_int_distribution<qint64> d(0, 3'000);
        for (int i = 0; i < n; ++i)
            values.push_back(d(rng));
    } else if (name == "log-uniform-full-range") {
        std::uniform_real_distribution<double> d(0, std::log(double(Histogram::DefaultHighestTrackableValue)));
        for (int i = 0; i < n; ++i)
            values.push_back(std::min<qint64>(nonNegative(std::exp(d(rng))),
                                              Histogram::DefaultHighestTrackableValue));
    } else if (name == "one-value") {
        values = {777'777};
    } else if (name == "two-values") {
        values = {3, 4'000'000};
    } else if (name == "seven-values") {
        values = {9'000, 10, 5'000'000, 2'049, 2'048, 77'777, 10};
    }
    return values;
}

Histogram histogramOf(const std::vector<qint64> &values)
{
    Histogram h;
    for (qint64 v : values)
        h.record(v);
    return h;
}

} // namespace

class TestHistogram : public QObject {
    Q_OBJECT

private slots:
    void distributions_data();
    void distributions();
    void merge_data() { distributions_data(); }
    void merge();
    void jsonRoundTrip_data() { distributions_data(); }
    void jsonRoundTrip();

    void bucketPrecision();
    void memoryFootprint();
    void tenValues();
    void latencyBlock();
    void emptyHistogram();
    void clampsAboveHighestTrackable();
    void negativeValuesCountAsZero();
    void recordNMatchesRecord();
    void rankIgnoresFloatingPointNoise();
    void stdevWithoutCancellation();
    void largeCounts();
    void reset();
    void mergeEmptyAndIntoEmpty();
    void mergeDifferentLayout();
    void fromJsonClampsToRange();
    void fromJsonErrors_data();
    void fromJsonErrors();
};

void TestHistogram::distributions_data()
{
    QTest::addColumn<QByteArray>("name");
    for (const char *name : {"uniform", "lognormal-long-tail", "constant", "bimodal", "small-exact-range",
                             "log-uniform-full-range", "one-value", "two-values", "seven-values"})
        QTest::newRow(name) << QByteArray(name);
}

void TestHistogram::distributions()
{
    QFETCH(QByteArray, name);
    std::vector<qint64> values = generate(name);
    const Histogram h = histogramOf(values);
    std::sort(values.begin(), values.end());

    QCOMPARE(h.count(), qint64(values.size()));
    QVERIFY(!h.isEmpty());
    QCOMPARE(h.min(), values.front());
    QCOMPARE(h.max(), values.back());
    QVERIFY2(closeRelative(h.mean(), exactMean(values), 1e-12L),
             qPrintable(QStringLiteral("mean %1 vs %2").arg(h.mean()).arg(double(exactMean(values)))));
    QVERIFY2(closeRelative(h.stdev(), exactStdev(values), 1e-9L),
             qPrintable(QStringLiteral("stdev %1 vs %2").arg(h.stdev()).arg(double(exactStdev(values)))));

    qint64 previous = h.min();
    for (qint64 ppm : percentileGridPpm()) {
        const qint64 actual = h.valueAtPercentile(ppmToPercent(ppm));
        const qint64 exact = exactPercentile(values, ppm);
        const QString where = QStringLiteral("p%1: %2 vs exact %3").arg(ppmToPercent(ppm)).arg(actual).arg(exact);
        // The stated precision: never below the exact value, at most 0.1% above it.
        QVERIFY2(actual >= exact, qPrintable(where));
        QVERIFY2((actual - exact) * 1000 <= exact, qPrintable(where));
        // The exact semantics: the highest equivalent value of the exact value's bucket, clamped to [min, max]
        // (p0 is the lowest equivalent value, so min itself).
        const qint64 expected = ppm == 0 ? h.min() : std::clamp(h.highestEquivalentValue(exact), h.min(), h.max());
        QVERIFY2(actual == expected, qPrintable(where));
        QVERIFY2(actual >= h.min() && actual <= h.max(), qPrintable(where));
        QVERIFY2(actual >= previous, qPrintable(where + QStringLiteral(" decreased")));
        previous = actual;
    }
    QCOMPARE(h.valueAtPercentile(100), h.max());
    QCOMPARE(h.valueAtPercentile(0), h.min());
    QCOMPARE(h.valueAtPercentile(250), h.max());
    QCOMPARE(h.valueAtPercentile(-3), h.min());
    QCOMPARE(h.valueAtPercentile(std::nan("")), h.min());

    const nlohmann::json block = Userflux::latencyBlockMs(h);
    const char *order[] = {"min", "p50", "p75", "p90", "p95", "p99", "p99_9", "max"};
    for (std::size_t i = 1; i < std::size(order); ++i)
        QVERIFY2(block[order[i - 1]].get<double>() <= block[order[i]].get<double>(), order[i]);
}

void TestHistogram::merge()
{
    QFETCH(QByteArray, name);
    const std::vector<qint64> values = generate(name);
    const Histogram all = histogramOf(values);

    std::vector<Histogram> parts(4);
    std::mt19937 rng(99);
    std::uniform_int_distribution<int> pick(0, 3);
    for (qint64 v : values)
        parts[std::size_t(pick(rng))].record(v);
    Histogram merged;
    for (const Histogram &part : parts)
        merged.merge(part);

    COMPARE_JSON(merged.toJson(), all.toJson());
    QCOMPARE(merged.count(), all.count());
    QCOMPARE(merged.min(), all.min());
    QCOMPARE(merged.max(), all.max());
    QCOMPARE(merged.mean(), all.mean()); // exact integer sums: identical, not just close
    QCOMPARE(merged.stdev(), all.stdev());
    for (qint64 ppm : percentileGridPpm())
        QCOMPARE(merged.valueAtPercentile(ppmToPercent(ppm)), all.valueAtPercentile(ppmToPercent(ppm)));
    COMPARE_JSON(Userflux::latencyBlockMs(merged), Userflux::latencyBlockMs(all));
}

void TestHistogram::jsonRoundTrip()
{
    QFETCH(QByteArray, name);
    std::vector<qint64> values = generate(name);
    const Histogram h = histogramOf(values);
    const nlohmann::json json = h.toJson();
    COMPARE_JSON(json["unit"], "us");
    COMPARE_JSON(json["significant_digits"], 3);

    // Buckets: ascending, non-empty, upper values are bucket tops, counts add up.
    qint64 total = 0;
    qint64 previousUpper = -1;
    for (const auto &bucket : json["buckets"]) {
        const qint64 upper = bucket[0].get<qint64>();
        QVERIFY(upper > previousUpper);
        QCOMPARE(h.highestEquivalentValue(upper), upper);
        QVERIFY(bucket[1].get<qint64>() > 0);
        total += bucket[1].get<qint64>();
        previousUpper = upper;
    }
    QCOMPARE(total, h.count());

    // Through text, as summary.json is read back, and straight from memory.
    for (const nlohmann::json &input : {nlohmann::json::parse(json.dump()), json}) {
        const Userflux::Result<Histogram> back = Histogram::fromJson(input);
        QVERIFY2(back.ok(), back.ok() ? "" : qPrintable(back.error().message));
        COMPARE_JSON(back->toJson(), json);
        QCOMPARE(back->count(), h.count());
        QVERIFY(back->min() <= h.min() && h.min() - back->min() <= h.min() / 1000);
        QVERIFY(back->max() >= h.max() && back->max() - h.max() <= h.max() / 1000);
        QVERIFY(closeRelative(back->mean(), h.mean(), 1e-3L));
        for (qint64 ppm : percentileGridPpm()) {
            const double p = ppmToPercent(ppm);
            const qint64 original = h.valueAtPercentile(p);
            const qint64 again = back->valueAtPercentile(p);
            if (ppm == 0) {
                QCOMPARE(again, back->min());
                continue;
            }
            // The bucket top the original reported (the original may have clamped it to its exact max), within
            // the range (a top bucket reaching past the highest trackable value stops there).
            QCOMPARE(again, std::min(h.highestEquivalentValue(original), back->max()));
            QVERIFY(again >= original && (again - original) * 1000 <= original);
        }
    }
}

void TestHistogram::bucketPrecision()
{
    const Histogram h;
    for (qint64 v = 0; v < 2048; ++v) {
        QCOMPARE(h.lowestEquivalentValue(v), v);
        QCOMPARE(h.highestEquivalentValue(v), v);
    }
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> logValue(std::log(2048.0), std::log(double(qint64(1) << 40)));
    for (int i = 0; i < 200'000; ++i) {
        const qint64 v = std::llround(std::exp(logValue(rng)));
        const qint64 lo = h.lowestEquivalentValue(v);
        const qint64 hi = h.highestEquivalentValue(v);
        QVERIFY(lo <= v && v <= hi);
        QVERIFY((hi - lo) * 1024 <= lo); // width < 1/1024 of every value in the bucket
        QCOMPARE(h.lowestEquivalentValue(hi), lo);
        QCOMPARE(h.highestEquivalentValue(lo), hi);
        QCOMPARE(h.lowestEquivalentValue(hi + 1), hi + 1); // buckets tile the line
    }
    // Powers of two and their neighbours, where buckets change width.
    for (int b = 11; b < 40; ++b) {
        const qint64 p = qint64(1) << b;
        QCOMPARE(h.lowestEquivalentValue(p), p);
        QCOMPARE(h.highestEquivalentValue(p - 1), p - 1);
        QCOMPARE(h.highestEquivalentValue(p), p + (qint64(1) << (b - 10)) - 1);
    }
}

void TestHistogram::memoryFootprint()
{
    // The figures stated in histogram.h.
    QCOMPARE(Histogram().footprintBytes(), std::size_t(188'416));
    QCOMPARE(Histogram(2).footprintBytes(), std::size_t(26'624));
    QCOMPARE(Histogram(4).footprintBytes(), std::size_t(2'490'368));
    // Every value up to the highest trackable has its own counter (no out-of-bounds write).
    Histogram h;
    h.record(Histogram::DefaultHighestTrackableValue);
    QCOMPARE(h.max(), Histogram::DefaultHighestTrackableValue);
    Histogram widest(5, Histogram::MaxHighestTrackableValue);
    widest.record(Histogram::MaxHighestTrackableValue);
    widest.record(std::numeric_limits<qint64>::max());
    QCOMPARE(widest.max(), Histogram::MaxHighestTrackableValue);
}

void TestHistogram::tenValues()
{
    Histogram h;
    for (qint64 v = 10; v <= 100; v += 10)
        h.record(v * Ms);
    const qint64 p50 = h.valueAtPercentile(50);
    QVERIFY2(p50 >= 50 * Ms && p50 <= 60 * Ms, qPrintable(QString::number(p50)));
    QCOMPARE(p50, h.highestEquivalentValue(50 * Ms)); // rank 5 is 50 ms
    const qint64 p99 = h.valueAtPercentile(99);
    QVERIFY(p99 <= h.max() && (h.max() - p99) * 1000 <= h.max());
    QCOMPARE(p99, 100 * Ms);
    QCOMPARE(h.valueAtPercentile(100), 100 * Ms);
    QCOMPARE(h.valueAtPercentile(90), h.highestEquivalentValue(90 * Ms)); // rank 9, not 10
    QCOMPARE(h.valueAtPercentile(10), h.highestEquivalentValue(10 * Ms));
    QCOMPARE(h.min(), 10 * Ms);
    QCOMPARE(h.max(), 100 * Ms);
    QCOMPARE(h.mean(), 55.0 * Ms);
}

void TestHistogram::latencyBlock()
{
    Histogram h;
    for (qint64 v = 10; v <= 100; v += 10)
        h.record(v * Ms);
    const nlohmann::json block = Userflux::latencyBlockMs(h);
    for (const char *key : {"count", "min", "mean", "stdev", "p50", "p75", "p90", "p95", "p99", "p99_9", "max"})
        QVERIFY2(block.contains(key), key);
    QCOMPARE(block.size(), std::size_t(11));
    QVERIFY(block["count"].is_number_integer());
    QCOMPARE(block["count"].get<qint64>(), 10);
    QVERIFY(block["min"].is_number_float());
    QCOMPARE(block["min"].get<double>(), 10.0);
    QCOMPARE(block["max"].get<double>(), 100.0);
    QCOMPARE(block["mean"].get<double>(), 55.0);
    QCOMPARE(block["stdev"].get<double>(), 28.723); // population stdev 28722.81 us
    QCOMPARE(block["p50"].get<double>(), double(h.valueAtPercentile(50)) / 1000.0);
    QCOMPARE(block["p50"].get<double>(), 50.015);
    QCOMPARE(block["p99"].get<double>(), 100.0);
    QCOMPARE(block["p99_9"].get<double>(), 100.0);

    Histogram odd;
    odd.record(1'234);
    odd.record(1'235);
    const nlohmann::json oddBlock = Userflux::latencyBlockMs(odd);
    QCOMPARE(oddBlock["min"].get<double>(), 1.234);
    QCOMPARE(oddBlock["max"].get<double>(), 1.235);
    QCOMPARE(oddBlock["mean"].get<double>(), 1.235); // 1234.5 us rounds to 1235
    QCOMPARE(oddBlock["stdev"].get<double>(), 0.001); // 0.5 us rounds to 1
    QCOMPARE(nlohmann::json::parse(oddBlock.dump())["min"].get<double>(), 1.234);
}

void TestHistogram::emptyHistogram()
{
    const Histogram h;
    QVERIFY(h.isEmpty());
    QCOMPARE(h.count(), 0);
    QCOMPARE(h.min(), 0);
    QCOMPARE(h.max(), 0);
    QCOMPARE(h.mean(), 0.0);
    QCOMPARE(h.stdev(), 0.0);
    for (double p : {0.0, 50.0, 99.9, 100.0})
        QCOMPARE(h.valueAtPercentile(p), 0);
    COMPARE_JSON(Userflux::latencyBlockMs(h), nlohmann::json({{"count", 0}}));
    const nlohmann::json json = h.toJson();
    COMPARE_JSON(json, nlohmann::json::parse(R"({"unit":"us","significant_digits":3,"buckets":[]})"));
    const Userflux::Result<Histogram> back = Histogram::fromJson(json);
    QVERIFY(back.ok());
    QVERIFY(back->isEmpty());
    COMPARE_JSON(back->toJson(), json);
}

void TestHistogram::clampsAboveHighestTrackable()
{
    Histogram small(3, 1'000'000);
    small.record(5'000'000);
    small.record(500);
    QCOMPARE(small.count(), 2);
    QCOMPARE(small.max(), 1'000'000);
    QCOMPARE(small.valueAtPercentile(100), 1'000'000);
    QCOMPARE(small.valueAtPercentile(50), 500);
    QCOMPARE(small.mean(), (1'000'000 + 500) / 2.0);

    Histogram h;
    h.record(10LL * 3'600'000'000); // 10 hours
    h.record(std::numeric_limits<qint64>::max());
    QCOMPARE(h.count(), 2);
    QCOMPARE(h.min(), Histogram::DefaultHighestTrackableValue);
    QCOMPARE(h.max(), Histogram::DefaultHighestTrackableValue);
    QCOMPARE(h.valueAtPercentile(50), Histogram::DefaultHighestTrackableValue);
    QCOMPARE(h.stdev(), 0.0);
    const nlohmann::json json = h.toJson();
    QCOMPARE(json["buckets"].size(), std::size_t(1));
    QCOMPARE(json["buckets"][0][1].get<qint64>(), 2);
    const Userflux::Result<Histogram> back = Histogram::fromJson(json);
    QVERIFY(back.ok());
    QCOMPARE(back->max(), Histogram::DefaultHighestTrackableValue);
    COMPARE_JSON(back->toJson(), json);
}

void TestHistogram::negativeValuesCountAsZero()
{
    Histogram h;
    h.record(-7);
    h.record(3);
    QCOMPARE(h.count(), 2);
    QCOMPARE(h.min(), 0);
    QCOMPARE(h.valueAtPercentile(50), 0);
    QCOMPARE(h.mean(), 1.5);
}

void TestHistogram::recordNMatchesRecord()
{
    Histogram a;
    Histogram b;
    for (qint64 v : {5LL, 999'999LL, 123'456LL}) {
        a.recordN(v, 1'000);
        for (int i = 0; i < 1'000; ++i)
            b.record(v);
    }
    a.recordN(42, 0);
    a.recordN(42, -5);
    COMPARE_JSON(a.toJson(), b.toJson());
    QCOMPARE(a.count(), 3'000);
    QCOMPARE(a.mean(), b.mean());
    QCOMPARE(a.stdev(), b.stdev());
    QCOMPARE(a.min(), 5);
}

void TestHistogram::rankIgnoresFloatingPointNoise()
{
    // 99.9 / 100 * 1000 is 999.0000000000001 in doubles; the rank is still 999.
    Histogram h;
    for (qint64 v = 1; v <= 1000; ++v)
        h.record(v);
    QCOMPARE(h.valueAtPercentile(99.9), 999);
    QCOMPARE(h.valueAtPercentile(0.1), 1);
    QCOMPARE(h.valueAtPercentile(0.1000001), 2);
    QCOMPARE(h.valueAtPercentile(99.90001), 1000);
    QCOMPARE(h.valueAtPercentile(50), 500);
    QCOMPARE(h.valueAtPercentile(50.00001), 501);
    // Every p = k / 10 on 1000 values is exactly rank k (in exact arithmetic).
    for (int k = 1; k <= 1000; ++k)
        QCOMPARE(h.valueAtPercentile(k / 10.0), qint64(k));
    // And the same on 7 and 3 values, where p / 100 * n is rarely an integer.
    Histogram seven;
    for (qint64 v = 1; v <= 7; ++v)
        seven.record(v);
    for (int k = 0; k <= 700; ++k) {
        const double p = k / 7.0;
        const qint64 rank = std::max(1, (k + 99) / 100); // ceil(k / 100)
        QCOMPARE(seven.valueAtPercentile(p), rank);
    }
}

void TestHistogram::stdevWithoutCancellation()
{
    // A mean of an hour with a spread of half a microsecond: sumsq/n - mean^2 would lose it entirely.
    Histogram h;
    for (int i = 0; i < 1'000; ++i) {
        h.record(Histogram::DefaultHighestTrackableValue);
        h.record(Histogram::DefaultHighestTrackableValue - 1);
    }
    QCOMPARE(h.stdev(), 0.5);
    QCOMPARE(h.mean(), Histogram::DefaultHighestTrackableValue - 0.5);
    Histogram same;
    same.recordN(2'999'999'999, 12'345);
    QCOMPARE(same.stdev(), 0.0);
}

void TestHistogram::largeCounts()
{
    Histogram h;
    h.recordN(1'000, qint64(1) << 45);
    h.recordN(3'000, qint64(1) << 45);
    QCOMPARE(h.count(), qint64(1) << 46);
    QCOMPARE(h.mean(), 2'000.0);
    QCOMPARE(h.stdev(), 1'000.0);
    QCOMPARE(h.valueAtPercentile(50), 1'000);
    QCOMPARE(h.valueAtPercentile(50.001), 3'000);
}

void TestHistogram::reset()
{
    Histogram h = histogramOf(generate("bimodal"));
    QVERIFY(!h.isEmpty());
    h.reset();
    QVERIFY(h.isEmpty());
    COMPARE_JSON(h.toJson(), Histogram().toJson());
    QCOMPARE(h.min(), 0);
    QCOMPARE(h.max(), 0);
    const std::vector<qint64> values = generate("uniform");
    for (qint64 v : values)
        h.record(v);
    const Histogram fresh = histogramOf(values);
    COMPARE_JSON(h.toJson(), fresh.toJson());
    QCOMPARE(h.mean(), fresh.mean());
    QCOMPARE(h.stdev(), fresh.stdev());
}

void TestHistogram::mergeEmptyAndIntoEmpty()
{
    const Histogram data = histogramOf(generate("seven-values"));
    Histogram into;
    into.merge(data);
    COMPARE_JSON(into.toJson(), data.toJson());
    QCOMPARE(into.min(), data.min());
    QCOMPARE(into.max(), data.max());
    into.merge(Histogram());
    COMPARE_JSON(into.toJson(), data.toJson());
    QCOMPARE(into.count(), data.count());
    QCOMPARE(into.min(), data.min());
    QCOMPARE(into.max(), data.max());
    QVERIFY(into.hasSameLayout(data));
    QVERIFY(!into.hasSameLayout(Histogram(2)));
    QVERIFY(!into.hasSameLayout(Histogram(3, 1'000'000)));
}

void TestHistogram::mergeDifferentLayout()
{
    std::vector<qint64> values = generate("lognormal-long-tail");
    Histogram coarse(2);
    for (qint64 v : values)
        coarse.record(v);
    Histogram h;
    h.record(1);
    h.merge(coarse);
    values.push_back(1);
    std::sort(values.begin(), values.end());
    QCOMPARE(h.count(), qint64(values.size()));
    QCOMPARE(h.min(), 1);
    QCOMPARE(h.max(), values.back());
    for (qint64 ppm : percentileGridPpm()) {
        const qint64 exact = exactPercentile(values, ppm);
        const qint64 actual = h.valueAtPercentile(ppmToPercent(ppm));
        // 2 digits: within 1/128 on either side (the bucket middle stands for the bucket).
        QVERIFY2(std::abs(actual - exact) * 64 <= exact + 64,
                 qPrintable(QStringLiteral("p%1: %2 vs %3").arg(ppmToPercent(ppm)).arg(actual).arg(exact)));
        QVERIFY(actual >= h.min() && actual <= h.max());
    }
    QVERIFY(closeRelative(h.mean(), exactMean(values), 1e-2L));
}

void TestHistogram::fromJsonClampsToRange()
{
    Histogram wide(3, Histogram::MaxHighestTrackableValue);
    wide.record(100);
    wide.record(10'000'000'000); // above an hour
    const Userflux::Result<Histogram> back = Histogram::fromJson(wide.toJson());
    QVERIFY(back.ok());
    QCOMPARE(back->count(), 2);
    QCOMPARE(back->min(), 100);
    QCOMPARE(back->max(), Histogram::DefaultHighestTrackableValue);
    const Userflux::Result<Histogram> kept = Histogram::fromJson(wide.toJson(), Histogram::MaxHighestTrackableValue);
    QVERIFY(kept.ok());
    COMPARE_JSON(kept->toJson(), wide.toJson());
    QCOMPARE(kept->valueAtPercentile(100), wide.highestEquivalentValue(10'000'000'000));

    // Other digits are read with their own layout.
    Histogram two(2);
    for (qint64 v : generate("bimodal"))
        two.record(v);
    const Userflux::Result<Histogram> twoBack = Histogram::fromJson(nlohmann::json::parse(two.toJson().dump()));
    QVERIFY(twoBack.ok());
    QCOMPARE(twoBack->significantDigits(), 2);
    COMPARE_JSON(twoBack->toJson(), two.toJson());
    QCOMPARE(twoBack->valueAtPercentile(95), two.highestEquivalentValue(two.valueAtPercentile(95)));
}

void TestHistogram::fromJsonErrors_data()
{
    QTest::addColumn<QByteArray>("json");
    QTest::addColumn<QString>("expected");
    QTest::newRow("not an object") << QByteArray("[1,2]") << "expected an object";
    QTest::newRow("no unit") << QByteArray(R"({"significant_digits":3,"buckets":[]})") << "histogram.unit";
    QTest::newRow("unit ms") << QByteArray(R"({"unit":"ms","significant_digits":3,"buckets":[]})")
                             << "histogram.unit: must be \"us\"";
    QTest::newRow("no digits") << QByteArray(R"({"unit":"us","buckets":[]})") << "significant_digits";
    QTest::newRow("digits 0") << QByteArray(R"({"unit":"us","significant_digits":0,"buckets":[]})")
                              << "from 1 to 5";
    QTest::newRow("digits 6") << QByteArray(R"({"unit":"us","significant_digits":6,"buckets":[]})")
                              << "from 1 to 5";
    QTest::newRow("digits float") << QByteArray(R"({"unit":"us","significant_digits":3.5,"buckets":[]})")
                                  << "from 1 to 5";
    QTest::newRow("digits string") << QByteArray(R"({"unit":"us","significant_digits":"3","buckets":[]})")
                                   << "from 1 to 5";
    QTest::newRow("no buckets") << QByteArray(R"({"unit":"us","significant_digits":3})") << "histogram.buckets";
    QTest::newRow("buckets object") << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":{}})")
                                    << "histogram.buckets: must be an array";
    QTest::newRow("bucket not pair") << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[5]]})")
                                     << "histogram.buckets[0]: must be a pair";
    QTest::newRow("bucket triple") << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[5,1,2]]})")
                                   << "histogram.buckets[0]: must be a pair";
    QTest::newRow("bucket float") << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[5.5,1]]})")
                                  << "histogram.buckets[0]: must be a pair";
    QTest::newRow("negative upper") << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[-5,1]]})")
                                    << "upper_value must be a non-negative integer";
    QTest::newRow("huge upper")
        << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[9223372036854775807,1]]})")
        << "upper_value must be a non-negative integer below 2^62";
    QTest::newRow("negative count")
        << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[1,2],[5,-1]]})")
        << "histogram.buckets[1]: count must be a non-negative integer";
    QTest::newRow("descending")
        << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[7,1],[5,1]]})")
        << "histogram.buckets[1]: upper values must be strictly ascending";
    QTest::newRow("duplicate")
        << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[7,1],[7,1]]})")
        << "strictly ascending";
    QTest::newRow("not a bucket top")
        << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[2048,1]]})")
        << "2048 is not the upper value of a bucket with 3 significant digits";
    QTest::newRow("count overflow")
        << QByteArray(R"({"unit":"us","significant_digits":3,"buckets":[[1,9223372036854775807],[2,1]]})")
        << "the total count overflows";
}

void TestHistogram::fromJsonErrors()
{
    QFETCH(QByteArray, json);
    QFETCH(QString, expected);
    const Userflux::Result<Histogram> h = Histogram::fromJson(nlohmann::json::parse(json.toStdString()));
    QVERIFY(!h.ok());
    QCOMPARE(h.error().code, QStringLiteral("invalid_histogram"));
    QVERIFY2(h.error().message.contains(expected), qPrintable(h.error().message));
}

QTEST_GUILESS_MAIN(TestHistogram)
#include "tst_histogram.moc"
