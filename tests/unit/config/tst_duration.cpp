// Durations and duration ranges as people write them in config files, and the compact form the core prints.
#include "userflux/duration.h"

#include <QTest>

#include <limits>

using namespace std::chrono_literals;
using std::chrono::microseconds;
using Userflux::DurationRange;

Q_DECLARE_METATYPE(std::chrono::microseconds)

class TestDuration : public QObject {
    Q_OBJECT

private slots:
    void parsesGood_data();
    void parsesGood();
    void rejectsBad_data();
    void rejectsBad();
    void messageShowsTheExpectedForm();
    void ranges_data();
    void ranges();
    void badRanges_data();
    void badRanges();
    void format_data();
    void format();
    void formatRoundTrips();
};

void TestDuration::parsesGood_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<microseconds>("expected");
    QTest::newRow("500ms") << "500ms" << microseconds(500ms);
    QTest::newRow("30s") << "30s" << microseconds(30s);
    QTest::newRow("2m") << "2m" << microseconds(2min);
    QTest::newRow("1h30m") << "1h30m" << microseconds(90min);
    QTest::newRow("1.5s") << "1.5s" << microseconds(1500ms);
    QTest::newRow("250us") << "250us" << 250us;
    QTest::newRow("µs") << QStringLiteral("250\u00b5s") << 250us;
    QTest::newRow("μs greek") << QStringLiteral("250\u03bcs") << 250us;
    QTest::newRow("0s") << "0s" << 0us;
    QTest::newRow("0ms") << "0ms" << 0us;
    QTest::newRow("1h30m10s") << "1h30m10s" << microseconds(1h + 30min + 10s);
    QTest::newRow("all units") << "1h2m3s4ms5us" << microseconds(1h + 2min + 3s + 4ms + 5us);
    QTest::newRow("1s500ms") << "1s500ms" << microseconds(1500ms);
    QTest::newRow("h then s") << "2h5s" << microseconds(2h + 5s);
    QTest::newRow("0.1s exact") << "0.1s" << microseconds(100ms);
    QTest::newRow("0.001ms") << "0.001ms" << 1us;
    QTest::newRow("0.25h") << "0.25h" << microseconds(15min);
    QTest::newRow("1.5m") << "1.5m" << microseconds(90s);
    QTest::newRow("trailing zeros") << "1.500000000000000000000000s" << microseconds(1500ms);
    QTest::newRow("0.0000001h") << "0.0000001h" << 360us;
    QTest::newRow("leading zeros") << "007s" << microseconds(7s);
    QTest::newRow("big") << "1000000h" << microseconds(1'000'000h);
    QTest::newRow("spaces around") << "  30s\t" << microseconds(30s);
    QTest::newRow("int64 max")
        << "9223372036854775807us" << microseconds(std::numeric_limits<std::int64_t>::max());
    QTest::newRow("max in parts") << "2562047788h54s775ms807us"
                                  << microseconds(std::numeric_limits<std::int64_t>::max());
}

void TestDuration::parsesGood()
{
    QFETCH(QString, text);
    QFETCH(microseconds, expected);
    const Userflux::Result<microseconds> d = Userflux::parseDuration(text);
    QVERIFY2(d.ok(), d.ok() ? "" : qPrintable(d.error().message));
    QCOMPARE(d->count(), expected.count());
}

void TestDuration::rejectsBad_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("reason"); // a fragment of the message
    QTest::newRow("empty") << "" << "use a number with a unit";
    QTest::newRow("blank") << "   " << "use a number with a unit";
    QTest::newRow("negative") << "-5s" << "must not be negative";
    QTest::newRow("negative zero") << "-0s" << "must not be negative";
    QTest::newRow("plus") << "+5s" << "use a number with a unit";
    QTest::newRow("bare number") << "30" << "a number needs a unit";
    QTest::newRow("bare zero") << "0" << "a number needs a unit";
    QTest::newRow("bare decimal") << "1.5" << "a number needs a unit";
    QTest::newRow("trailing number") << "1h30" << "a number needs a unit";
    QTest::newRow("unknown unit") << "30x" << "unknown unit \"x\"";
    QTest::newRow("min") << "5min" << "unknown unit \"min\"";
    QTest::newRow("sec") << "5sec" << "unknown unit \"sec\"";
    QTest::newRow("upper case") << "5S" << "unknown unit \"S\"";
    QTest::newRow("days") << "1d" << "unknown unit \"d\"";
    QTest::newRow("ns") << "5ns" << "unknown unit \"ns\"";
    QTest::newRow("unit only") << "ms" << "use a number with a unit";
    QTest::newRow("ascending") << "30m1h" << "from the largest to the smallest";
    QTest::newRow("repeated") << "1s1s" << "from the largest to the smallest";
    QTest::newRow("ms before s") << "500ms1s" << "from the largest to the smallest";
    QTest::newRow("inner space") << "1h 30m" << "use a number with a unit";
    QTest::newRow("leading point") << ".5s" << "use a number with a unit";
    QTest::newRow("trailing point") << "5.s" << "use a number with a unit";
    QTest::newRow("two points") << "1.2.3s" << "use a number with a unit";
    QTest::newRow("comma decimal") << "1,5s" << "use a number with a unit";
    QTest::newRow("sub-microsecond") << "1.5us" << "not a whole number of microseconds";
    QTest::newRow("sub-microsecond ms") << "0.0001ms" << "not a whole number of microseconds";
    QTest::newRow("too many decimals") << "0.1234567890123456789s" << "too many decimals";
    QTest::newRow("overflow us") << "9223372036854775808us" << "too long a duration";
    QTest::newRow("overflow h") << "2562047789h" << "too long a duration";
    QTest::newRow("overflow parts") << "2562047788h54s775ms808us" << "too long a duration";
    QTest::newRow("overflow digits") << "99999999999999999999999999999999h" << "too long a duration";
    QTest::newRow("arabic digits") << QStringLiteral("\u0665s") << "use a number with a unit";
    QTest::newRow("range given") << "1s..2s" << "use a number with a unit";
}

void TestDuration::rejectsBad()
{
    QFETCH(QString, text);
    QFETCH(QString, reason);
    const Userflux::Result<microseconds> d = Userflux::parseDuration(text);
    QVERIFY2(!d.ok(), qPrintable(QStringLiteral("parsed as %1 us").arg(d.ok() ? d->count() : 0)));
    QCOMPARE(d.error().code, QStringLiteral("invalid_duration"));
    const QString &message = d.error().message;
    QVERIFY2(message.startsWith(QLatin1Char('"') + text + QLatin1Char('"')), qPrintable(message));
    QVERIFY2(message.contains(reason), qPrintable(message));
}

void TestDuration::messageShowsTheExpectedForm()
{
    const Userflux::Result<microseconds> d = Userflux::parseDuration(QStringLiteral("30x"));
    QVERIFY(!d.ok());
    QCOMPARE(d.error().message,
             QStringLiteral("\"30x\" is not a duration: unknown unit \"x\"; use a number with a unit us, ms, s, m or "
                            "h, e.g. \"500ms\", \"30s\", \"1h30m\""));
    const Userflux::Result<microseconds> big = Userflux::parseDuration(QStringLiteral("9999999999h"));
    QVERIFY(!big.ok());
    QCOMPARE(big.error().message,
             QStringLiteral("\"9999999999h\" is too long a duration: the longest is 2562047788h54s775ms807us"));
}

void TestDuration::ranges_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<microseconds>("min");
    QTest::addColumn<microseconds>("max");
    QTest::newRow("single") << "500ms" << microseconds(500ms) << microseconds(500ms);
    QTest::newRow("range") << "500ms..1500ms" << microseconds(500ms) << microseconds(1500ms);
    QTest::newRow("mixed units") << "1s..2m" << microseconds(1s) << microseconds(2min);
    QTest::newRow("equal bounds") << "1s..1000ms" << microseconds(1s) << microseconds(1s);
    QTest::newRow("decimals") << "1.5s..2.5s" << microseconds(1500ms) << microseconds(2500ms);
    QTest::newRow("zero lower") << "0s..1s" << 0us << microseconds(1s);
    QTest::newRow("spaces") << " 1s .. 2s " << microseconds(1s) << microseconds(2s);
}

void TestDuration::ranges()
{
    QFETCH(QString, text);
    QFETCH(microseconds, min);
    QFETCH(microseconds, max);
    const Userflux::Result<DurationRange> r = Userflux::parseDurationRange(text);
    QVERIFY2(r.ok(), r.ok() ? "" : qPrintable(r.error().message));
    QCOMPARE(r->min.count(), min.count());
    QCOMPARE(r->max.count(), max.count());
    QVERIFY(*r == (DurationRange{min, max}));
}

void TestDuration::badRanges_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("message");
    QTest::newRow("reversed")
        << "2s..1s"
        << "\"2s..1s\" is not a duration range: the lower bound 2s is above the upper bound 1s; write a duration "
           "such as \"500ms\" or a range \"A..B\" such as \"500ms..1500ms\"";
    QTest::newRow("bad upper")
        << "500ms..30x"
        << "\"500ms..30x\" is not a duration range: its upper bound \"30x\" is not a duration: unknown unit \"x\"; "
           "use a number with a unit us, ms, s, m or h, e.g. \"500ms\", \"30s\", \"1h30m\"";
    QTest::newRow("bare lower")
        << "1..5s"
        << "\"1..5s\" is not a duration range: its lower bound \"1\" is not a duration: a number needs a unit; use a "
           "number with a unit us, ms, s, m or h, e.g. \"500ms\", \"30s\", \"1h30m\"";
    QTest::newRow("missing upper") << "1s.." << "its upper bound \"\" is not a duration";
    QTest::newRow("missing lower") << "..1s" << "its lower bound \"\" is not a duration";
    QTest::newRow("three bounds") << "1s..2s..3s" << "more than one \"..\"";
    QTest::newRow("triple dot") << "1s...2s" << "its upper bound \".2s\" is not a duration";
    QTest::newRow("negative lower") << "-1s..2s" << "must not be negative";
    QTest::newRow("bad single") << "fast" << "\"fast\" is not a duration";
    QTest::newRow("empty") << "" << "\"\" is not a duration";
}

void TestDuration::badRanges()
{
    QFETCH(QString, text);
    QFETCH(QString, message);
    const Userflux::Result<DurationRange> r = Userflux::parseDurationRange(text);
    QVERIFY(!r.ok());
    QCOMPARE(r.error().code, QStringLiteral("invalid_duration"));
    QVERIFY2(r.error().message.contains(message), qPrintable(r.error().message));
    QVERIFY2(r.error().message.startsWith(QLatin1Char('"') + text + QLatin1Char('"')), qPrintable(r.error().message));
}

void TestDuration::format_data()
{
    QTest::addColumn<microseconds>("duration");
    QTest::addColumn<QString>("expected");
    QTest::newRow("zero") << 0us << "0s";
    QTest::newRow("90s") << microseconds(90s) << "1m30s";
    QTest::newRow("250ms") << microseconds(250ms) << "250ms";
    QTest::newRow("1500ms") << microseconds(1500ms) << "1s500ms";
    QTest::newRow("1h") << microseconds(1h) << "1h";
    QTest::newRow("1h5s") << microseconds(1h + 5s) << "1h5s";
    QTest::newRow("90min") << microseconds(90min) << "1h30m";
    QTest::newRow("1us") << 1us << "1us";
    QTest::newRow("all") << microseconds(25h + 1min + 1s + 1ms + 1us) << "25h1m1s1ms1us";
    QTest::newRow("negative") << microseconds(-1500ms) << "-1s500ms";
    QTest::newRow("max") << microseconds(std::numeric_limits<std::int64_t>::max()) << "2562047788h54s775ms807us";
    QTest::newRow("min") << microseconds(std::numeric_limits<std::int64_t>::min()) << "-2562047788h54s775ms808us";
}

void TestDuration::format()
{
    QFETCH(microseconds, duration);
    QFETCH(QString, expected);
    QCOMPARE(Userflux::formatDuration(duration), expected);
}

void TestDuration::formatRoundTrips()
{
    const std::int64_t samples[] = {0,          1,           999,         1'000,        1'001,      59'999'999,
                                    60'000'000, 3'599'999'999, 3'600'000'000, 86'400'000'001,
                                    std::numeric_limits<std::int64_t>::max()};
    for (std::int64_t us : samples) {
        const QString text = Userflux::formatDuration(microseconds(us));
        const Userflux::Result<microseconds> back = Userflux::parseDuration(text);
        QVERIFY2(back.ok(), qPrintable(text));
        QCOMPARE(back->count(), us);
    }
}

QTEST_GUILESS_MAIN(TestDuration)
#include "tst_duration.moc"
