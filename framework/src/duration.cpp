#include "userflux/duration.h"

#include <cstdint>
#include <limits>

namespace Userflux {

namespace {

__extension__ using Int128 = __int128;

constexpr std::int64_t MaxMicroseconds = std::numeric_limits<std::chrono::microseconds::rep>::max();

struct Unit {
    const char16_t *name;
    int rank;           // larger is longer; parts must come in strictly descending rank
    std::int64_t micros;
};

// "µs" in both spellings people type: MICRO SIGN (U+00B5) and GREEK SMALL LETTER MU (U+03BC).
constexpr Unit Units[] = {
    {u"h", 5, 3'600'000'000}, {u"m", 4, 60'000'000}, {u"s", 3, 1'000'000}, {u"ms", 2, 1'000},
    {u"us", 1, 1},            {u"\u00b5s", 1, 1},    {u"\u03bcs", 1, 1},
};

const QString &usage()
{
    static const QString text = QStringLiteral(
        "use a number with a unit us, ms, s, m or h, e.g. \"500ms\", \"30s\", \"1h30m\"");
    return text;
}

Error durationError(const QString &text, const QString &why)
{
    return Error{QStringLiteral("invalid_duration"), QLatin1Char('"') + text + QLatin1Char('"') + why};
}

Error notADuration(const QString &text, const QString &reason = {})
{
    return durationError(text, QStringLiteral(" is not a duration: ") + reason + usage());
}

bool isDigit(QChar c)
{
    // Not QChar::isDigit(): that accepts every Unicode decimal digit, which the arithmetic below does not.
    return c >= QLatin1Char('0') && c <= QLatin1Char('9');
}

bool isUnitChar(QChar c)
{
    return (c >= QLatin1Char('a') && c <= QLatin1Char('z')) || (c >= QLatin1Char('A') && c <= QLatin1Char('Z'))
           || c == QChar(0x00b5) || c == QChar(0x03bc);
}

const Unit *findUnit(QStringView name)
{
    for (const Unit &unit : Units) {
        if (name == QStringView(unit.name))
            return &unit;
    }
    return nullptr;
}

Int128 pow10(qsizetype exponent)
{
    Int128 result = 1;
    for (qsizetype i = 0; i < exponent; ++i)
        result *= 10;
    return result;
}

} // namespace

Result<std::chrono::microseconds> parseDuration(const QString &text)
{
    const QString t = text.trimmed();
    if (t.isEmpty())
        return notADuration(text);
    if (t.front() == QLatin1Char('-'))
        return notADuration(text, QStringLiteral("it must not be negative; "));

    // Exact integer arithmetic throughout (no double): "0.1s" must be 100000 us, not 99999, and a total just
    // past the int64 range must be an error rather than wrap. Every intermediate below stays under 2^100.
    Int128 total = 0;
    int previousRank = std::numeric_limits<int>::max();
    qsizetype i = 0;
    const qsizetype n = t.size();
    while (i < n) {
        const qsizetype intStart = i;
        while (i < n && isDigit(t[i]))
            ++i;
        const QStringView intDigits = QStringView(t).mid(intStart, i - intStart);
        QStringView fracDigits;
        bool hasPoint = false;
        if (i < n && t[i] == QLatin1Char('.')) {
            hasPoint = true;
            const qsizetype fracStart = ++i;
            while (i < n && isDigit(t[i]))
                ++i;
            fracDigits = QStringView(t).mid(fracStart, i - fracStart);
        }
        // Both sides of a decimal point are required: ".5s" and "5.s" read like typos.
        if (intDigits.isEmpty() || (hasPoint && fracDigits.isEmpty()))
            return notADuration(text);

        const qsizetype unitStart = i;
        while (i < n && isUnitChar(t[i]))
            ++i;
        const QStringView unitName = QStringView(t).mid(unitStart, i - unitStart);
        if (unitName.isEmpty()) {
            if (i == n)
                return notADuration(text, QStringLiteral("a number needs a unit; "));
            return notADuration(text);
        }
        const Unit *unit = findUnit(unitName);
        if (!unit)
            return notADuration(text, QStringLiteral("unknown unit \"%1\"; ").arg(unitName));
        if (unit->rank >= previousRank)
            return durationError(text, QStringLiteral(" is not a duration: write each unit once, from the largest "
                                                      "to the smallest, e.g. \"1h30m10s\""));
        previousRank = unit->rank;

        // Saturating: anything above the int64 range is reported as too long below, however many digits.
        Int128 whole = 0;
        for (QChar c : intDigits) {
            whole = whole * 10 + (c.unicode() - u'0');
            if (whole > MaxMicroseconds)
                break;
        }
        total += whole * unit->micros;
        if (total > MaxMicroseconds)
            break;

        // A fraction counts only if it is a whole number of microseconds: "1.5ms" is 1500 us, "1.5us" is an
        // error rather than a silent rounding.
        qsizetype fracLength = fracDigits.size();
        while (fracLength > 0 && fracDigits[fracLength - 1] == QLatin1Char('0'))
            --fracLength;
        if (fracLength > 0) {
            // 18 digits keep numerator * micros below 2^100; a longer fraction is no real duration anyway.
            if (fracLength > 18)
                return durationError(text, QStringLiteral(" is not a duration: too many decimals; ") + usage());
            Int128 numerator = 0;
            for (qsizetype k = 0; k < fracLength; ++k)
                numerator = numerator * 10 + (fracDigits[k].unicode() - u'0');
            const Int128 scaled = numerator * unit->micros;
            const Int128 denominator = pow10(fracLength);
            if (scaled % denominator != 0)
                return durationError(text, QStringLiteral(" is not a duration: it is not a whole number of "
                                                          "microseconds (us is the smallest unit)"));
            total += scaled / denominator;
        }
        if (total > MaxMicroseconds)
            break;
    }
    if (total > MaxMicroseconds)
        return durationError(text, QStringLiteral(" is too long a duration: the longest is %1")
                                       .arg(formatDuration(std::chrono::microseconds(MaxMicroseconds))));
    return std::chrono::microseconds(std::int64_t(total));
}

Result<DurationRange> parseDurationRange(const QString &text)
{
    const QString separator = QStringLiteral("..");
    const auto rangeError = [&text](const QString &why) {
        return Error{QStringLiteral("invalid_duration"),
                     QStringLiteral("\"%1\" is not a duration range: %2; write a duration such as \"500ms\" or a "
                                    "range \"A..B\" such as \"500ms..1500ms\"")
                         .arg(text, why)};
    };
    const qsizetype at = text.indexOf(separator);
    if (at < 0) {
        Result<std::chrono::microseconds> single = parseDuration(text);
        if (!single)
            return single.error();
        return DurationRange{*single, *single};
    }
    if (text.indexOf(separator, at + separator.size()) >= 0)
        return rangeError(QStringLiteral("more than one \"..\""));
    const QString lowText = text.left(at);
    const QString highText = text.mid(at + separator.size());
    Result<std::chrono::microseconds> low = parseDuration(lowText);
    // A bad bound already has a message with the expected form; prefix it rather than repeat the hint.
    const auto boundError = [&text](const char *which, const Error &error) {
        return Error{error.code, QStringLiteral("\"%1\" is not a duration range: its %2 bound %3")
                                     .arg(text, QLatin1String(which), error.message)};
    };
    if (!low)
        return boundError("lower", low.error());
    Result<std::chrono::microseconds> high = parseDuration(highText);
    if (!high)
        return boundError("upper", high.error());
    if (*low > *high)
        return rangeError(QStringLiteral("the lower bound %1 is above the upper bound %2")
                              .arg(formatDuration(*low), formatDuration(*high)));
    return DurationRange{*low, *high};
}

QString formatDuration(std::chrono::microseconds duration)
{
    const std::int64_t count = duration.count();
    if (count == 0)
        return QStringLiteral("0s");
    // Unsigned magnitude so that the most negative value does not overflow on negation.
    std::uint64_t rest = count < 0 ? 0 - std::uint64_t(count) : std::uint64_t(count);
    QString out;
    if (count < 0)
        out += QLatin1Char('-');
    for (const Unit &unit : Units) {
        if (unit.name[0] > u'z') // the µs spellings: "us" already wrote the microseconds
            continue;
        const std::uint64_t micros = std::uint64_t(unit.micros);
        if (rest >= micros) {
            out += QString::number(rest / micros) + QString::fromUtf16(unit.name);
            rest %= micros;
        }
    }
    return out;
}

} // namespace Userflux
