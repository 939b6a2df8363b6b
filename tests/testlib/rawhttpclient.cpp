#include "rawhttpclient.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QHostAddress>
#include <QTimer>
#include <QNetworkProxy>

namespace Userflux::Test {

bool waitUntil(const std::function<bool()> &predicate, int timeoutMs)
{
    // Sleeps in the event dispatcher until something happens (unlike QTest::qWaitFor, which polls every
    // 10 ms): a test doing hundreds of round trips stays fast.
    QDeadlineTimer deadline(timeoutMs);
    QTimer wake;
    wake.setSingleShot(true);
    wake.start(timeoutMs);
    while (!predicate()) {
        if (deadline.hasExpired())
            return predicate();
        QCoreApplication::processEvents(QEventLoop::AllEvents | QEventLoop::WaitForMoreEvents);
        QCoreApplication::sendPostedEvents(nullptr, QEvent::DeferredDelete);
    }
    return true;
}

QByteArray RawHttpClient::Response::header(const QByteArray &name) const
{
    for (const auto &h : headers) {
        if (h.first.compare(name, Qt::CaseInsensitive) == 0)
            return h.second;
    }
    return {};
}

RawHttpClient::RawHttpClient(QObject *parent) : QObject(parent)
{
    m_socket.setProxy(QNetworkProxy::NoProxy);
    connect(&m_socket, &QTcpSocket::readyRead, this, &RawHttpClient::onReadyRead);
    connect(&m_socket, &QTcpSocket::disconnected, this, [this] {
        onReadyRead();
        m_disconnected = true;
        parse(true);
    });
    connect(&m_socket, &QTcpSocket::errorOccurred, this, [this](QAbstractSocket::SocketError e) {
        m_error = e;
        if (m_socket.state() != QAbstractSocket::ConnectedState) {
            onReadyRead();
            m_disconnected = true;
            parse(true);
        }
    });
}

bool RawHttpClient::connectTo(quint16 port, int timeoutMs)
{
    m_socket.connectToHost(QHostAddress::LocalHost, port);
    // Spin the loop rather than waitForConnected(): a server on this thread may need to run meanwhile.
    return waitUntil([this] { return m_socket.state() == QAbstractSocket::ConnectedState; }, timeoutMs);
}

void RawHttpClient::sendRaw(const QByteArray &bytes)
{
    m_socket.write(bytes);
    m_socket.flush();
}

QByteArray RawHttpClient::request(const QByteArray &method, const QByteArray &target,
                                  const QList<QPair<QByteArray, QByteArray>> &headers, const QByteArray &body)
{
    QByteArray out = method + ' ' + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    bool hasLength = false;
    for (const auto &h : headers) {
        out += h.first + ": " + h.second + "\r\n";
        if (h.first.compare("Content-Length", Qt::CaseInsensitive) == 0
            || h.first.compare("Transfer-Encoding", Qt::CaseInsensitive) == 0)
            hasLength = true;
    }
    if (!body.isEmpty() && !hasLength)
        out += "Content-Length: " + QByteArray::number(body.size()) + "\r\n";
    out += "\r\n";
    out += body;
    return out;
}

void RawHttpClient::sendRequest(const QByteArray &method, const QByteArray &target,
                                const QList<QPair<QByteArray, QByteArray>> &headers, const QByteArray &body)
{
    m_headFlags.push_back(method == "HEAD");
    sendRaw(request(method, target, headers, body));
}

bool RawHttpClient::waitForResponses(int count, int timeoutMs)
{
    // Stops early once the server has closed: no more responses can come.
    waitUntil([&] { return m_responses.size() >= count || m_disconnected; }, timeoutMs);
    return m_responses.size() >= count;
}

bool RawHttpClient::waitForDisconnected(int timeoutMs)
{
    return waitUntil([this] { return m_disconnected; }, timeoutMs);
}

QList<RawHttpClient::Response> RawHttpClient::takeResponses()
{
    return std::exchange(m_responses, {});
}

void RawHttpClient::onReadyRead()
{
    if (!m_socket.isReadable())
        return;
    const QByteArray bytes = m_socket.readAll();
    if (bytes.isEmpty())
        return;
    m_received += bytes;
    m_buffer += bytes;
    parse(false);
}

// Parses as many complete responses as m_buffer holds. Enough HTTP/1.1 for the tests: Content-Length,
// chunked (extensions and trailers ignored), bodiless statuses and HEAD, close-delimited bodies.
void RawHttpClient::parse(bool eof)
{
    while (!m_parseError && !m_buffer.isEmpty()) {
        const qsizetype headEnd = m_buffer.indexOf("\r\n\r\n");
        if (headEnd < 0) {
            if (eof)
                m_parseError = true;
            return;
        }
        Response r;
        const QList<QByteArray> lines = m_buffer.left(headEnd).split('\n');
        const QByteArray statusLine = lines.first().trimmed();
        const QList<QByteArray> parts = statusLine.split(' ');
        if (parts.size() < 2 || !parts[0].startsWith("HTTP/1.")) {
            m_parseError = true;
            return;
        }
        r.version = parts[0];
        r.status = parts[1].toInt();
        for (qsizetype i = 1; i < lines.size(); ++i) {
            const QByteArray line = lines[i].trimmed();
            const qsizetype colon = line.indexOf(':');
            if (colon <= 0) {
                m_parseError = true;
                return;
            }
            r.headers.append({line.left(colon), line.mid(colon + 1).trimmed()});
        }
        qsizetype pos = headEnd + 4;
        if (r.status >= 100 && r.status < 200) {
            m_buffer.remove(0, pos); // interim response: not counted, does not consume a HEAD flag
            continue;
        }
        const bool head = !m_headFlags.empty() && m_headFlags.front();
        const bool bodiless = head || r.status == 204 || r.status == 304;
        if (!bodiless && r.header("Transfer-Encoding").toLower().contains("chunked")) {
            r.chunked = true;
            QByteArray body;
            while (true) {
                const qsizetype nl = m_buffer.indexOf("\r\n", pos);
                if (nl < 0)
                    return;
                QByteArray sizeLine = m_buffer.mid(pos, nl - pos);
                const qsizetype semi = sizeLine.indexOf(';');
                if (semi >= 0)
                    sizeLine.truncate(semi);
                bool ok = false;
                const qint64 size = sizeLine.trimmed().toLongLong(&ok, 16);
                if (!ok) {
                    m_parseError = true;
                    return;
                }
                if (size == 0) {
                    // trailers until an empty line
                    qsizetype t = nl + 2;
                    while (true) {
                        const qsizetype tn = m_buffer.indexOf("\r\n", t);
                        if (tn < 0)
                            return;
                        if (tn == t) {
                            pos = tn + 2;
                            break;
                        }
                        t = tn + 2;
                    }
                    break;
                }
                if (m_buffer.size() < nl + 2 + size + 2)
                    return;
                body += m_buffer.mid(nl + 2, size);
                pos = nl + 2 + size + 2;
            }
            r.body = body;
        } else if (!bodiless && !r.header("Content-Length").isEmpty()) {
            const qint64 length = r.header("Content-Length").toLongLong();
            if (m_buffer.size() - pos < length) {
                if (eof)
                    m_parseError = true; // the connection ended inside the body
                return;
            }
            r.body = m_buffer.mid(pos, length);
            pos += length;
        } else if (!bodiless) {
            if (!eof)
                return;
            r.closeDelimited = true;
            r.body = m_buffer.mid(pos);
            pos = m_buffer.size();
        }
        if (!m_headFlags.empty())
            m_headFlags.pop_front();
        m_buffer.remove(0, pos);
        m_responses.append(r);
    }
}

} // namespace Userflux::Test
