#include "userflux/plugin.h"

namespace Userflux {

QByteArray headerValue(const HttpHeaders &headers, const QByteArray &name)
{
    // Header names are case-insensitive (RFC 9110 §5.1); the first occurrence wins, as most clients do.
    for (const auto &h : headers) {
        if (h.first.compare(name, Qt::CaseInsensitive) == 0)
            return h.second;
    }
    return {};
}

QString errorKindName(ErrorKind kind)
{
    // These strings are keys of errors_by_kind in summary.json: part of the run contract, never rename them.
    switch (kind) {
    case ErrorKind::None: return {};
    case ErrorKind::HttpStatus: return QStringLiteral("http_status");
    case ErrorKind::Timeout: return QStringLiteral("timeout");
    case ErrorKind::ConnectRefused: return QStringLiteral("connect_refused");
    case ErrorKind::ConnectTimeout: return QStringLiteral("connect_timeout");
    case ErrorKind::Reset: return QStringLiteral("reset");
    case ErrorKind::Tls: return QStringLiteral("tls");
    case ErrorKind::Dns: return QStringLiteral("dns");
    case ErrorKind::Protocol: return QStringLiteral("protocol");
    case ErrorKind::Interrupted: return QStringLiteral("interrupted");
    case ErrorKind::Other: return QStringLiteral("other");
    }
    return QStringLiteral("other");
}

} // namespace Userflux
