#include "userflux/httpserver.h"

#include <QElapsedTimer>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTimer>
#include <QUrl>

#include <algorithm>
#include <deque>
#include <unordered_map>

#ifdef Q_OS_UNIX
#include <sys/socket.h>
#endif

namespace Userflux::Http {

namespace {

// Parsed-ahead pipelined requests per connection. Past this we stop reading the socket, so a client that
// pipelines without reading answers is slowed down by TCP rather than growing our memory.
constexpr std::size_t MaxQueuedRequests = 32;
constexpr qint64 MaxQueuedBodyBytes = 4 * 1024 * 1024;
constexpr int MaxHeaderCount = 128;
constexpr qsizetype MaxChunkLine = 1024;
// How long a closing connection keeps draining what the peer still sends after our FIN (see beginClose()).
constexpr int LingerMs = 2000;
// Qt's own read buffer per socket: bounded so that TCP flow control, not memory, absorbs a fast sender.
constexpr qint64 SocketReadBuffer = 256 * 1024;

QByteArray reasonPhrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    if (status >= 200 && status < 300) return "OK";
    if (status >= 300 && status < 400) return "Redirect";
    if (status >= 400 && status < 500) return "Client Error";
    if (status >= 500 && status < 600) return "Server Error";
    return "Status";
}

bool isTokenChar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

bool isToken(QByteArrayView s)
{
    if (s.isEmpty())
        return false;
    return std::all_of(s.begin(), s.end(), isTokenChar);
}

// Whether a comma-separated header value (Connection) lists `token`, case-insensitively.
bool listsToken(QByteArrayView value, QByteArrayView token)
{
    qsizetype start = 0;
    while (start <= value.size()) {
        qsizetype comma = value.indexOf(',', start);
        if (comma < 0)
            comma = value.size();
        if (value.sliced(start, comma - start).trimmed().compare(token, Qt::CaseInsensitive) == 0)
            return true;
        start = comma + 1;
    }
    return false;
}

bool responseHasNoBody(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

} // namespace

QByteArray Request::header(const QByteArray &name) const
{
    for (const auto &h : headers) {
        if (h.first.compare(name, Qt::CaseInsensitive) == 0)
            return h.second;
    }
    return {};
}

// ---------------------------------------------------------------------------------------------------------------
struct Server::Private {
    QTcpServer *tcp = nullptr;
    Handler handler;
    qint64 maxHead = 64 * 1024;
    qint64 maxBody = 16 * 1024 * 1024;
    int idleMs = 60000;
    ServerStats stats;
    quint64 lastConnectionId = 0;
    QString error;
    std::unordered_map<quint64, std::shared_ptr<Connection>> connections;
    QTimer sweep;
    QElapsedTimer clock;
};

// One accepted socket: an incremental request parser, a queue of parsed (pipelined) requests, and the state of
// the request being answered. Owned by Server::Private::connections while the socket lives; Responders keep it
// alive (detached) afterwards so that their calls stay harmless.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(Server *server, QTcpSocket *socket, quint64 id);
    ~Connection();

    void start();
    void detach();
    bool isIdleSince(qint64 now, int idleMs) const;
    void beginClose();

    // Responder entry points. `seq` 0 means "the current request".
    bool isConnected() const;
    void send(quint64 seq, const Response &response);
    void writeRaw(quint64 seq, const QByteArray &bytes);
    void finish(quint64 seq, bool closeAfter);
    void closeFrom(quint64 seq);
    void abortFrom(quint64 seq);

private:
    enum class State { Head, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailers, Stopped };
    struct Pending {
        Request request;
        int errorStatus = 0;   // answered by the core (malformed, over a limit)
        bool wantsClose = false;
    };

    bool answerable(quint64 seq) const { return m_socket && m_busy && (seq == 0 || seq == m_seq); }
    void onReadyRead();
    void onDisconnected();
    void onBytesWritten();
    void process();
    void pull();
    void parse();
    bool parseHead(qsizetype headEnd);
    void completeRequest();
    void failRequest(int status);
    void dispatchOne();
    void answered(bool closeAfter);
    qint64 write(const QByteArray &bytes);
    void shutdownWrite();
    void resetNow();
    void cleanup();
    void compact();
    qint64 now() const { return m_server ? m_server->d->clock.elapsed() : 0; }
    ServerStats *stats() const { return m_server ? &m_server->d->stats : nullptr; }

    Server *m_server;
    QPointer<QTcpSocket> m_socket;
    const quint64 m_id;
    QHostAddress m_peer;

    // Input: m_in[m_pos..] is unconsumed. Indices below are absolute into m_in; compact() shifts them.
    QByteArray m_in;
    qsizetype m_pos = 0;
    qsizetype m_lineStart = 0;   // Head/Trailers: start of the line not yet terminated
    qint64 m_remaining = 0;      // Body/ChunkData: bytes still expected
    qint64 m_trailerBytes = 0;
    State m_state = State::Head;
    Request m_cur;
    bool m_curWantsClose = false;
    bool m_curExpectsContinue = false;
    int m_parsedOnConnection = 0;

    std::deque<Pending> m_queue;
    qint64 m_queuedBodyBytes = 0;

    // The request being answered.
    bool m_busy = false;
    quint64 m_seq = 0;
    bool m_curIsHead = false;
    bool m_curIsHttp10 = false;
    bool m_currentWantsClose = false;

    bool m_processing = false;
    bool m_closing = false;       // no more requests; close once written
    bool m_writeShut = false;
    bool m_resetPending = false;  // abort() waits for written bytes to reach the kernel
    bool m_gone = false;
    qint64 m_lastActivity = 0;
};

Connection::Connection(Server *server, QTcpSocket *socket, quint64 id)
    : m_server(server), m_socket(socket), m_id(id), m_peer(socket->peerAddress())
{
}

Connection::~Connection()
{
    if (m_socket) {
        m_socket->disconnect();
        m_socket->abort();
        m_socket->deleteLater();
    }
}

void Connection::start()
{
    QTcpSocket *s = m_socket;
    // Nagle would hold a small response (or the tail of one written in pieces) for the peer's delayed ACK.
    s->setSocketOption(QAbstractSocket::LowDelayOption, 1);
    s->setReadBufferSize(SocketReadBuffer);
    std::weak_ptr<Connection> weak = weak_from_this();
    QObject::connect(s, &QTcpSocket::readyRead, s, [weak] {
        if (auto c = weak.lock())
            c->onReadyRead();
    });
    QObject::connect(s, &QTcpSocket::bytesWritten, s, [weak] {
        if (auto c = weak.lock())
            c->onBytesWritten();
    });
    QObject::connect(s, &QTcpSocket::disconnected, s, [weak] {
        if (auto c = weak.lock())
            c->onDisconnected();
    });
    QObject::connect(s, &QTcpSocket::errorOccurred, s, [weak](QAbstractSocket::SocketError) {
        // A reset or a failed write: the socket may not emit disconnected() in every such case.
        if (auto c = weak.lock()) {
            if (c->m_socket && c->m_socket->state() != QAbstractSocket::ConnectedState)
                c->onDisconnected();
        }
    });
    m_lastActivity = now();
    if (s->bytesAvailable() > 0)
        onReadyRead();
}

void Connection::detach()
{
    m_server = nullptr;
    m_queue.clear();
    m_gone = true;
    if (m_socket) {
        m_socket->disconnect();
        m_socket->abort();
        m_socket->deleteLater();
        m_socket = nullptr;
    }
}

bool Connection::isIdleSince(qint64 t, int idleMs) const
{
    // A connection whose request is with the handler is not idle: how long a handler takes is its own business.
    return !m_busy && !m_closing && t - m_lastActivity >= idleMs;
}

bool Connection::isConnected() const
{
    return m_socket && !m_gone && !m_closing && m_socket->state() == QAbstractSocket::ConnectedState;
}

void Connection::onReadyRead()
{
    if (!m_socket)
        return;
    m_lastActivity = now();
    if (m_closing || m_state == State::Stopped) {
        // Draining while closing (or after a request that ends the connection): what follows is never served.
        m_socket->skip(m_socket->bytesAvailable());
        return;
    }
    process();
}

void Connection::onBytesWritten()
{
    if (!m_socket || m_socket->bytesToWrite() > 0)
        return;
    if (m_resetPending)
        resetNow();
    else if (m_closing && !m_writeShut)
        shutdownWrite();
}

void Connection::onDisconnected()
{
    if (m_gone)
        return;
    cleanup();
}

void Connection::cleanup()
{
    m_gone = true;
    m_queue.clear();
    m_in.clear();
    m_pos = 0;
    auto self = shared_from_this(); // the map below may hold the last reference
    if (m_socket) {
        m_socket->disconnect();
        m_socket->deleteLater();
        m_socket = nullptr;
    }
    if (m_server) {
        Server::Private *d = m_server->d.get();
        if (d->stats.connectionsOpen > 0)
            --d->stats.connectionsOpen;
        d->connections.erase(m_id);
    }
}

// Reads what the socket holds (when there is room for more parsed requests), parses it and hands the next
// request to the handler, for as long as the handler answers synchronously. Re-entrant calls (an answer sent
// from inside the handler) just return: the running loop re-checks its conditions.
void Connection::process()
{
    if (m_processing)
        return;
    auto self = shared_from_this();
    m_processing = true;
    while (m_socket && !m_closing) {
        pull();
        parse();
        if (m_busy || m_queue.empty())
            break;
        dispatchOne();
    }
    m_processing = false;
}

void Connection::pull()
{
    if (m_queue.size() >= MaxQueuedRequests || m_queuedBodyBytes >= MaxQueuedBodyBytes)
        return;
    if (m_socket->bytesAvailable() <= 0)
        return;
    compact();
    if (m_in.isEmpty())
        m_in = m_socket->readAll(); // no copy in the common case of one request per read
    else
        m_in.append(m_socket->readAll());
}

void Connection::compact()
{
    if (m_pos == 0)
        return;
    if (m_pos >= m_in.size()) {
        m_in.clear();
    } else if (m_pos >= 64 * 1024 || m_pos * 2 >= m_in.size()) {
        m_in.remove(0, m_pos);
    } else {
        return;
    }
    m_lineStart -= m_pos;
    m_pos = 0;
}

void Connection::parse()
{
    const Server::Private *d = m_server ? m_server->d.get() : nullptr;
    if (!d)
        return;
    while (m_state != State::Stopped && m_queue.size() < MaxQueuedRequests
           && m_queuedBodyBytes < MaxQueuedBodyBytes) {
        const qsizetype avail = m_in.size() - m_pos;
        switch (m_state) {
        case State::Head: {
            // Scan line by line from where the previous read stopped, so a head arriving a byte at a time
            // costs linear, not quadratic, time.
            bool complete = false;
            while (true) {
                const qsizetype nl = m_in.indexOf('\n', m_lineStart);
                if (nl < 0)
                    break;
                const qsizetype lineLen = nl - m_lineStart - ((nl > m_lineStart && m_in[nl - 1] == '\r') ? 1 : 0);
                if (lineLen == 0) {
                    if (m_lineStart == m_pos) {
                        // Empty line(s) before a request line are ignored (RFC 9112 §2.2): some clients send a
                        // stray CRLF after a body.
                        m_pos = m_lineStart = nl + 1;
                        continue;
                    }
                    if (nl + 1 - m_pos > d->maxHead) {
                        failRequest(431);
                        return;
                    }
                    complete = parseHead(nl + 1);
                    if (!complete)
                        return; // failRequest() was called
                    break;
                }
                m_lineStart = nl + 1;
            }
            if (!complete) {
                if (m_in.size() - m_pos > d->maxHead)
                    failRequest(431);
                return;
            }
            break;
        }
        case State::Body:
            if (avail < m_remaining)
                return;
            m_cur.body = m_in.mid(m_pos, m_remaining);
            m_pos += m_remaining;
            m_remaining = 0;
            completeRequest();
            break;
        case State::ChunkSize: {
            const qsizetype nl = m_in.indexOf('\n', m_pos);
            if (nl < 0) {
                if (avail > MaxChunkLine)
                    failRequest(400);
                return;
            }
            QByteArrayView line(m_in.constData() + m_pos, nl - m_pos);
            if (line.endsWith('\r'))
                line.chop(1);
            const qsizetype semi = line.indexOf(';'); // chunk extensions are ignored
            if (semi >= 0)
                line = line.first(semi);
            line = line.trimmed();
            if (line.isEmpty() || line.size() > 15) {
                failRequest(400);
                return;
            }
            qint64 size = 0;
            for (char c : line) {
                int v;
                if (c >= '0' && c <= '9') v = c - '0';
                else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
                else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
                else {
                    failRequest(400);
                    return;
                }
                size = size * 16 + v;
            }
            m_pos = nl + 1;
            if (size == 0) {
                m_state = State::Trailers;
                m_lineStart = m_pos;
                m_trailerBytes = 0;
            } else if (m_cur.body.size() + size > d->maxBody) {
                failRequest(413);
                return;
            } else {
                m_remaining = size;
                m_state = State::ChunkData;
            }
            break;
        }
        case State::ChunkData: {
            if (avail == 0)
                return;
            const qint64 take = std::min<qint64>(avail, m_remaining);
            m_cur.body.append(m_in.constData() + m_pos, take);
            m_pos += take;
            m_remaining -= take;
            if (m_remaining > 0)
                return;
            m_state = State::ChunkDataEnd;
            break;
        }
        case State::ChunkDataEnd:
            if (avail == 0)
                return;
            if (m_in[m_pos] == '\n') {
                m_pos += 1;
            } else if (m_in[m_pos] == '\r') {
                if (avail < 2)
                    return;
                if (m_in[m_pos + 1] != '\n') {
                    failRequest(400);
                    return;
                }
                m_pos += 2;
            } else {
                failRequest(400);
                return;
            }
            m_state = State::ChunkSize;
            break;
        case State::Trailers: {
            // Trailer fields are read and dropped: nothing here needs them.
            const qsizetype nl = m_in.indexOf('\n', m_lineStart);
            if (nl < 0) {
                if (m_trailerBytes + (m_in.size() - m_lineStart) > d->maxHead)
                    failRequest(431);
                return;
            }
            const qsizetype lineLen = nl - m_lineStart - ((nl > m_lineStart && m_in[nl - 1] == '\r') ? 1 : 0);
            m_trailerBytes += nl + 1 - m_lineStart;
            m_pos = m_lineStart = nl + 1;
            if (lineLen == 0) {
                completeRequest();
            } else if (m_trailerBytes > d->maxHead) {
                failRequest(431);
                return;
            }
            break;
        }
        case State::Stopped:
            return;
        }
    }
}

// Parses the head m_in[m_pos, headEnd) into m_cur and decides how the body is framed. Returns false after
// failRequest() when the head is not acceptable.
bool Connection::parseHead(qsizetype headEnd)
{
    const Server::Private *d = m_server->d.get();
    m_cur = Request{};
    m_curWantsClose = false;
    m_curExpectsContinue = false;
    const char *base = m_in.constData();

    qsizetype pos = m_pos;
    auto nextLine = [&](QByteArrayView &line) {
        const qsizetype nl = m_in.indexOf('\n', pos);
        qsizetype end = nl;
        if (end > pos && base[end - 1] == '\r')
            --end;
        line = QByteArrayView(base + pos, end - pos);
        pos = nl + 1;
    };

    // Request line: method SP request-target SP HTTP-version
    QByteArrayView line;
    nextLine(line);
    const qsizetype sp1 = line.indexOf(' ');
    const qsizetype sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
    if (sp1 <= 0 || sp2 < 0 || sp2 == sp1 + 1 || line.indexOf(' ', sp2 + 1) >= 0) {
        failRequest(400);
        return false;
    }
    const QByteArrayView method = line.first(sp1);
    const QByteArrayView target = line.sliced(sp1 + 1, sp2 - sp1 - 1);
    const QByteArrayView version = line.sliced(sp2 + 1);
    if (!isToken(method)) {
        failRequest(400);
        return false;
    }
    for (char c : target) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
            failRequest(400);
            return false;
        }
    }
    if (version.size() != 8 || !version.startsWith("HTTP/") || version[6] != '.' || version[5] < '0'
        || version[5] > '9' || version[7] < '0' || version[7] > '9') {
        failRequest(400);
        return false;
    }
    if (version[5] != '1') {
        failRequest(505);
        return false;
    }
    const bool http10 = version[7] == '0';

    QByteArrayView origin = target;
    if (target.startsWith('/')) {
        // origin-form
    } else if (target == "*") {
        origin = {};
    } else if (target.startsWith("http://") || target.startsWith("https://")) {
        // absolute-form: serve its path (we are the origin, whatever the authority says)
        const qsizetype slash = target.indexOf('/', target.indexOf("//") + 2);
        origin = slash < 0 ? QByteArrayView("/") : target.sliced(slash);
    } else {
        failRequest(400);
        return false;
    }

    m_cur.method = method.toByteArray();
    m_cur.target = target.toByteArray();
    m_cur.version = version.toByteArray();
    const qsizetype q = origin.indexOf('?');
    const QByteArrayView rawPath = q < 0 ? origin : origin.first(q);
    m_cur.path = target == "*" ? QStringLiteral("*") : QUrl::fromPercentEncoding(rawPath.toByteArray());
    if (q >= 0)
        m_cur.query = QUrlQuery(QString::fromUtf8(origin.sliced(q + 1)));

    // Header fields
    qint64 contentLength = -1;
    bool chunked = false;
    bool sawTransferEncoding = false;
    bool keepAlive10 = false;
    int count = 0;
    while (pos < headEnd) {
        nextLine(line);
        if (line.isEmpty())
            break;
        if (++count > MaxHeaderCount) {
            failRequest(431);
            return false;
        }
        const qsizetype colon = line.indexOf(':');
        // No whitespace between name and colon, no obsolete line folding (RFC 9112 §5.1, §5.2).
        if (colon <= 0 || !isToken(line.first(colon))) {
            failRequest(400);
            return false;
        }
        const QByteArrayView name = line.first(colon);
        const QByteArrayView value = line.sliced(colon + 1).trimmed();
        for (char c : value) {
            const auto u = static_cast<unsigned char>(c);
            if ((u < 0x20 && c != '\t') || u == 0x7f) {
                failRequest(400);
                return false;
            }
        }
        if (name.compare("Content-Length", Qt::CaseInsensitive) == 0) {
            // A list of identical values is tolerated (RFC 9110 §8.6); anything else is a framing error.
            qsizetype start = 0;
            while (start <= value.size()) {
                qsizetype comma = value.indexOf(',', start);
                if (comma < 0)
                    comma = value.size();
                const QByteArrayView item = value.sliced(start, comma - start).trimmed();
                if (item.isEmpty() || item.size() > 18
                    || !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                    failRequest(400);
                    return false;
                }
                const qint64 n = item.toLongLong();
                if (contentLength >= 0 && n != contentLength) {
                    failRequest(400);
                    return false;
                }
                contentLength = n;
                start = comma + 1;
            }
        } else if (name.compare("Transfer-Encoding", Qt::CaseInsensitive) == 0) {
            sawTransferEncoding = true;
            const QByteArray codings = value.toByteArray().toLower();
            if (codings.trimmed() == "chunked") {
                chunked = true;
            } else {
                const QList<QByteArray> list = codings.split(',');
                // Without chunked last the length is unknowable; other codings we simply do not implement.
                failRequest(list.last().trimmed() == "chunked" ? 501 : 400);
                return false;
            }
        } else if (name.compare("Connection", Qt::CaseInsensitive) == 0) {
            if (listsToken(value, "close"))
                m_curWantsClose = true;
            else if (listsToken(value, "keep-alive"))
                keepAlive10 = true;
        } else if (name.compare("Expect", Qt::CaseInsensitive) == 0) {
            m_curExpectsContinue = value.compare("100-continue", Qt::CaseInsensitive) == 0;
        }
        m_cur.headers.append({name.toByteArray(), value.toByteArray()});
    }
    // HTTP/1.0 closes unless the client asked for keep-alive (and did not also ask for close).
    if (http10 && !keepAlive10)
        m_curWantsClose = true;
    if (sawTransferEncoding && (contentLength >= 0 || http10)) {
        // Both framings at once is the classic request-smuggling shape; HTTP/1.0 has no chunked coding.
        failRequest(400);
        return false;
    }

    m_pos = m_lineStart = headEnd;
    m_cur.peer = m_peer;
    m_cur.connectionId = m_id;
    m_cur.indexOnConnection = m_parsedOnConnection;

    const bool hasBody = chunked || contentLength > 0;
    if (hasBody && m_curExpectsContinue && !http10 && !m_busy && m_queue.empty()
        && m_in.size() - m_pos == 0 && !(contentLength > d->maxBody)) {
        // The client waits for this before sending the body; only sent when no earlier response is due, so it
        // cannot land in the middle of one.
        write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (chunked) {
        m_state = State::ChunkSize;
    } else if (contentLength > 0) {
        if (contentLength > d->maxBody) {
            failRequest(413);
            return false;
        }
        m_remaining = contentLength;
        m_state = State::Body;
    } else {
        completeRequest();
    }
    return true;
}

void Connection::completeRequest()
{
    Pending p;
    p.request = std::move(m_cur);
    p.wantsClose = m_curWantsClose;
    m_queuedBodyBytes += p.request.body.size();
    m_cur = Request{};
    m_queue.push_back(std::move(p));
    ++m_parsedOnConnection;
    if (auto *s = stats())
        ++s->requestsReceived;
    if (m_curWantsClose) {
        // Nothing after a request that ends the connection is ever served.
        m_state = State::Stopped;
    } else {
        m_state = State::Head;
        m_lineStart = m_pos;
    }
}

void Connection::failRequest(int status)
{
    Pending p;
    p.errorStatus = status;
    p.wantsClose = true;
    m_queue.push_back(std::move(p));
    m_cur = Request{};
    m_state = State::Stopped;
    if (auto *s = stats()) {
        ++s->requestsReceived;
        ++s->protocolErrors;
    }
}

void Connection::dispatchOne()
{
    Pending p = std::move(m_queue.front());
    m_queue.pop_front();
    m_queuedBodyBytes -= p.request.body.size();
    ++m_seq;
    m_busy = true;
    m_currentWantsClose = p.wantsClose;
    m_curIsHead = p.request.method == "HEAD";
    m_curIsHttp10 = p.request.version == "HTTP/1.0";
    if (p.errorStatus) {
        Response r;
        r.status = p.errorStatus;
        r.body = reasonPhrase(p.errorStatus) + '\n';
        r.headers.append({QByteArray("Content-Type"), QByteArray("text/plain")});
        r.close = true;
        send(m_seq, r);
        return;
    }
    if (!m_server || !m_server->d->handler) {
        Response r;
        r.status = 503;
        r.close = true;
        send(m_seq, r);
        return;
    }
    // Copy: the handler may replace itself (or destroy the server) while running.
    const Server::Handler handler = m_server->d->handler;
    handler(p.request, Responder(shared_from_this(), m_seq));
}

qint64 Connection::write(const QByteArray &bytes)
{
    if (!m_socket || bytes.isEmpty())
        return 0;
    const qint64 n = m_socket->write(bytes);
    if (n > 0) {
        if (auto *s = stats())
            s->bytesWritten += quint64(n);
    }
    return n;
}

void Connection::send(quint64 seq, const Response &r)
{
    if (!answerable(seq))
        return;
    bool close = r.close || m_currentWantsClose;
    bool hasLength = false;
    bool hasTransferEncoding = false;
    qsizetype headerBytes = 0;
    for (const auto &h : r.headers)
        headerBytes += h.first.size() + h.second.size() + 4;

    const bool noBody = responseHasNoBody(r.status);
    const bool sendBody = !noBody && !m_curIsHead;
    QByteArray out;
    out.reserve(64 + headerBytes + (sendBody ? r.body.size() : 0) + 48);
    out += "HTTP/1.1 ";
    out += QByteArray::number(r.status);
    out += ' ';
    out += reasonPhrase(r.status);
    out += "\r\n";
    for (const auto &h : r.headers) {
        if (h.first.compare("Connection", Qt::CaseInsensitive) == 0) {
            // We frame the connection ourselves; a handler asking for close gets it.
            if (listsToken(h.second, "close"))
                close = true;
            continue;
        }
        if (h.first.compare("Content-Length", Qt::CaseInsensitive) == 0)
            hasLength = true;
        else if (h.first.compare("Transfer-Encoding", Qt::CaseInsensitive) == 0)
            hasTransferEncoding = true;
        out += h.first;
        out += ": ";
        out += h.second;
        out += "\r\n";
    }
    if (!hasLength && !hasTransferEncoding && !noBody) {
        out += "Content-Length: ";
        out += QByteArray::number(r.body.size());
        out += "\r\n";
    }
    if (close)
        out += "Connection: close\r\n";
    else if (m_curIsHttp10)
        out += "Connection: keep-alive\r\n";
    out += "\r\n";
    if (sendBody)
        out += r.body;
    write(out);
    answered(close);
}

void Connection::writeRaw(quint64 seq, const QByteArray &bytes)
{
    if (!answerable(seq))
        return;
    write(bytes);
    // Raw writes are often a response in pieces with pauses in between: each piece should leave now.
    if (m_socket)
        m_socket->flush();
}

void Connection::finish(quint64 seq, bool closeAfter)
{
    if (!answerable(seq))
        return;
    answered(closeAfter || m_currentWantsClose);
}

void Connection::answered(bool closeAfter)
{
    m_busy = false;
    m_lastActivity = now();
    if (auto *s = stats())
        ++s->responsesCompleted;
    if (m_socket)
        m_socket->flush(); // saves a trip through the event loop before the bytes leave
    if (closeAfter) {
        beginClose();
        return;
    }
    if (!m_processing && m_socket)
        process();
}

void Connection::closeFrom(quint64 seq)
{
    if (!m_socket || (seq != 0 && seq != m_seq))
        return;
    m_busy = false;
    beginClose();
}

void Connection::abortFrom(quint64 seq)
{
    if (!m_socket || (seq != 0 && seq != m_seq))
        return;
    m_busy = false;
    m_closing = true;
    m_state = State::Stopped;
    m_queue.clear();
    // onBytesWritten() resets once the kernel has every written byte; flush() may get there synchronously.
    m_resetPending = true;
    m_socket->flush();
    if (!m_socket || !m_resetPending)
        return;
    if (m_socket->bytesToWrite() == 0) {
        resetNow();
        return;
    }
    QTimer::singleShot(LingerMs, m_socket, [weak = weak_from_this()] {
        if (auto c = weak.lock())
            c->resetNow();
    });
}

void Connection::resetNow()
{
    m_resetPending = false;
    if (!m_socket)
        return;
#ifdef Q_OS_UNIX
    // SO_LINGER with a zero timeout makes close() send RST instead of FIN: the peer sees a reset.
    const qintptr fd = m_socket->socketDescriptor();
    if (fd >= 0) {
        struct linger lg {1, 0};
        ::setsockopt(int(fd), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
#endif
    m_socket->abort();
    if (!m_gone)
        cleanup();
}

// Graceful close: stop serving, let written bytes reach the kernel, then shut down our sending side and keep
// reading (and dropping) until the peer closes or LingerMs passes. Closing outright while the peer still sends
// (pipelined requests, the rest of a body we refused) would make the kernel answer with RST, which can destroy
// the response the peer has not read yet.
void Connection::beginClose()
{
    m_state = State::Stopped;
    m_queue.clear();
    m_queuedBodyBytes = 0;
    if (m_closing || !m_socket)
        return;
    m_closing = true;
    m_socket->flush(); // may reach shutdownWrite() synchronously through onBytesWritten()
    if (!m_socket)
        return;
    QTimer::singleShot(LingerMs, m_socket, [weak = weak_from_this()] {
        if (auto c = weak.lock()) {
            if (c->m_socket) {
                c->m_socket->abort();
                if (!c->m_gone)
                    c->cleanup();
            }
        }
    });
    if (m_socket->bytesToWrite() == 0)
        shutdownWrite();
}

void Connection::shutdownWrite()
{
    if (!m_socket || m_writeShut)
        return;
    m_writeShut = true;
#ifdef Q_OS_UNIX
    const qintptr fd = m_socket->socketDescriptor();
    if (fd >= 0) {
        ::shutdown(int(fd), SHUT_WR);
        m_socket->skip(m_socket->bytesAvailable());
        return;
    }
#endif
    m_socket->disconnectFromHost();
}

// ---------------------------------------------------------------------------------------------------------------
Responder::Responder(std::shared_ptr<Connection> connection, quint64 sequence)
    : m_connection(std::move(connection)), m_sequence(sequence)
{
}

bool Responder::isConnected() const
{
    return m_connection && m_connection->isConnected();
}

void Responder::send(const Response &response)
{
    if (m_connection)
        m_connection->send(m_sequence, response);
}

void Responder::sendJson(int status, const QByteArray &json, const Headers &extraHeaders)
{
    Response r;
    r.status = status;
    r.headers.reserve(extraHeaders.size() + 1);
    r.headers.append({QByteArray("Content-Type"), QByteArray("application/json")});
    r.headers.append(extraHeaders);
    r.body = json;
    send(r);
}

void Responder::writeRaw(const QByteArray &bytes)
{
    if (m_connection)
        m_connection->writeRaw(m_sequence, bytes);
}

void Responder::finish(bool closeAfter)
{
    if (m_connection)
        m_connection->finish(m_sequence, closeAfter);
}

void Responder::close()
{
    if (m_connection)
        m_connection->closeFrom(m_sequence);
}

void Responder::abort()
{
    if (m_connection)
        m_connection->abortFrom(m_sequence);
}

// ---------------------------------------------------------------------------------------------------------------
Server::Server(QObject *parent) : QObject(parent), d(std::make_unique<Private>())
{
    d->clock.start();
    d->tcp = new QTcpServer(this);
    // Load tests open connections in bursts; Qt's default backlog of 50 would drop SYNs.
    d->tcp->setListenBacklogSize(1024);
    connect(d->tcp, &QTcpServer::newConnection, this, [this] {
        while (QTcpSocket *socket = d->tcp->nextPendingConnection()) {
            socket->setParent(nullptr); // owned by its Connection from now on
            const quint64 id = ++d->lastConnectionId;
            auto connection = std::make_shared<Connection>(this, socket, id);
            d->connections.emplace(id, connection);
            ++d->stats.connectionsAccepted;
            ++d->stats.connectionsOpen;
            connection->start();
        }
    });
    d->sweep.setTimerType(Qt::CoarseTimer);
    connect(&d->sweep, &QTimer::timeout, this, [this] {
        if (d->idleMs <= 0)
            return;
        const qint64 t = d->clock.elapsed();
        std::vector<std::shared_ptr<Connection>> idle;
        for (const auto &[id, c] : d->connections) {
            if (c->isIdleSince(t, d->idleMs))
                idle.push_back(c);
        }
        for (const auto &c : idle)
            c->beginClose();
    });
}

Server::~Server()
{
    auto connections = std::move(d->connections);
    d->connections.clear();
    for (auto &[id, c] : connections)
        c->detach();
}

void Server::setHandler(Handler handler)
{
    d->handler = std::move(handler);
}

void Server::setMaxRequestSize(qint64 headBytes, qint64 bodyBytes)
{
    d->maxHead = std::max<qint64>(headBytes, 64);
    d->maxBody = std::max<qint64>(bodyBytes, 0);
}

void Server::setIdleTimeout(int ms)
{
    d->idleMs = std::max(ms, 0);
    if (d->idleMs == 0) {
        d->sweep.stop();
    } else {
        // Sweep often enough that a connection closes within ~25% of the timeout after it expires.
        d->sweep.setInterval(std::clamp(d->idleMs / 4, 10, 1000));
        if (d->tcp->isListening())
            d->sweep.start();
    }
}

bool Server::listen(const QHostAddress &address, quint16 port)
{
    if (!d->tcp->listen(address, port)) {
        d->error = d->tcp->errorString();
        return false;
    }
    d->error.clear();
    setIdleTimeout(d->idleMs);
    return true;
}

quint16 Server::port() const
{
    return d->tcp->serverPort();
}

QHostAddress Server::address() const
{
    return d->tcp->serverAddress();
}

QString Server::errorString() const
{
    return d->error.isEmpty() ? d->tcp->errorString() : d->error;
}

void Server::close()
{
    d->tcp->close();
    d->sweep.stop();
    std::vector<std::shared_ptr<Connection>> all;
    all.reserve(d->connections.size());
    for (const auto &[id, c] : d->connections)
        all.push_back(c);
    for (const auto &c : all)
        c->beginClose();
}

const ServerStats &Server::stats() const
{
    return d->stats;
}

} // namespace Userflux::Http
