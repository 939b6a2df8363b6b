#pragma once
#include <QString>

namespace Userflux {

// True when `id` is a valid run id: [A-Za-z0-9][A-Za-z0-9._-]{0,63}, never "." or "..". A valid id is safe as a
// single path component. Pure; thread-safe.
bool isValidRunId(const QString &id);

// A new, sortable run id from the current UTC time and a random suffix: "20261203-180102-4f2a".
QString generateRunId();

} // namespace Userflux
