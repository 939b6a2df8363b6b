#pragma once
// Human durations as written in config files: "500ms", "30s", "2m", "1h30m", "1.5s", "250us", and ranges
// "500ms..1500ms". All functions are pure and thread-safe; nothing blocks.
#include "userflux/result.h"

#include <QString>

#include <chrono>

namespace Userflux {

// Parses a duration: one or more <number><unit> parts, units strictly descending, each at most once
// ("1h30m10s", "1s500ms"); units us (also "µs"), ms, s, m, h, lower-case; a number is digits with an optional
// decimal fraction ("1.5s", "0.25h"), so long as the total is a whole number of microseconds. Surrounding
// white space is ignored. Rejected, with error code "invalid_duration" and a message that quotes the text and
// shows the expected form: empty text, a sign ("-5s", "+5s"), a bare number ("30"), an unknown unit ("30x",
// "5min"), units out of order or repeated ("30m1h"), a fraction finer than 1 us ("1.5us"), and totals above
// the largest std::chrono::microseconds (about 292,000 years).
Result<std::chrono::microseconds> parseDuration(const QString &text);

struct DurationRange {
    std::chrono::microseconds min{0};
    std::chrono::microseconds max{0};
    bool operator==(const DurationRange &) const = default;
};

// Parses either a single duration (min == max) or "A..B" with A <= B ("500ms..1500ms"; white space around the
// parts is ignored). Errors (code "invalid_duration") quote the whole text: a bad part, more than one "..",
// or A > B.
Result<DurationRange> parseDurationRange(const QString &text);

// The compact form parseDuration() reads back to the same value: non-zero parts from h down to us, e.g.
// "1m30s", "250ms", "1s500ms", "1h0m5s" is written "1h5s", zero is "0s". A negative duration gets a leading
// "-" (which parseDuration() refuses).
QString formatDuration(std::chrono::microseconds duration);

} // namespace Userflux
