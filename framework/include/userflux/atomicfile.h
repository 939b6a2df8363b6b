#pragma once
#include "userflux/result.h"
#include <QByteArray>
#include <QString>

namespace Userflux {

// Writes `data` to `path` atomically: a temporary file in the same folder is written, flushed to disk and
// renamed over `path`, so a reader (or a crash) sees either the old file or the new one, never a mix.
// Thread-safe for distinct paths; blocking (file I/O). The folder must exist.
Result<void> writeFileAtomically(const QString &path, const QByteArray &data);

// Appends whole lines to an append-only stream (timeseries.ndjson, samples.ndjson). Each call writes complete
// lines only, so a crash leaves the file ending on a whole line or with at most one torn line that readers drop.
Result<void> appendToFile(const QString &path, const QByteArray &lines);

} // namespace Userflux
