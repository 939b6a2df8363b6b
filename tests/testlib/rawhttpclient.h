#pragma once
// Userflux::Test::RawHttpClient: a deliberately small HTTP/1.1 client on one QTcpSocket, for tests that need
// exact control over the bytes sent (split requests, pipelining, garbage) and an exact view of what came back
// (every response in order, framing headers, whether and when the server closed).
//
// Threading: lives on the test's thread. The wait*() functions run that thread's event loop (waitUntil()), so a
// server on the same thread keeps running while a test waits; they never block it.
#include <QAbstractSocket>
#include <QByteArray>
#include <QList>
#include <QObject>
#include <QPair>
#include <QTcpSocket>

#include <deque>
#include <functional>

namespace Userflux::Test {

// Runs the calling thread's event loop until predicate() is true (returns true) or timeoutMs passes (returns
// predicate()). Wakes on events rather than polling, so a round trip costs microseconds, not 10 ms.
bool waitUntil(const std::function<bool()> &predicate, int timeoutMs = 3000);

class RawHttpClient : public QObject {
    Q_OBJECT
public:
    struct Response {
        QByteArray version;
        int status = 0;
        QList<QPair<QByteArray, QByteArray>> headers;
        QByteArray body;
        bool chunked = false;
        bool closeDelimited = false; // body ran until the server closed
        QByteArray header(const QByteArray &name) const;
    };

    explicit RawHttpClient(QObject *parent = nullptr);

    // Connects to 127.0.0.1:port; false after timeoutMs.
    bool connectTo(quint16 port, int timeoutMs = 3000);
    // Sends bytes as they are (one write, flushed). Responses to them are parsed as non-HEAD.
    void sendRaw(const QByteArray &bytes);
    // Builds and sends one request (adds Host and, when body is set, Content-Length).
    void sendRequest(const QByteArray &method, const QByteArray &target,
                     const QList<QPair<QByteArray, QByteArray>> &headers = {}, const QByteArray &body = {});
    // Builds a request without sending it.
    static QByteArray request(const QByteArray &method, const QByteArray &target,
                              const QList<QPair<QByteArray, QByteArray>> &headers = {},
                              const QByteArray &body = {});

    bool waitForResponses(int count, int timeoutMs = 3000);
    bool waitForDisconnected(int timeoutMs = 3000);

    const QList<Response> &responses() const { return m_responses; }
    QList<Response> takeResponses();
    QByteArray received() const { return m_received; }    // every byte received, raw
    qint64 bytesReceived() const { return m_received.size(); }
    bool isConnected() const { return m_socket.state() == QAbstractSocket::ConnectedState; }
    bool disconnected() const { return m_disconnected; }
    QAbstractSocket::SocketError error() const { return m_error; }
    bool parseError() const { return m_parseError; }
    QTcpSocket &socket() { return m_socket; }

private:
    void onReadyRead();
    void parse(bool eof);

    QTcpSocket m_socket;
    QByteArray m_buffer;
    QByteArray m_received;
    QList<Response> m_responses;
    std::deque<bool> m_headFlags;
    bool m_disconnected = false;
    bool m_parseError = false;
    QAbstractSocket::SocketError m_error = QAbstractSocket::UnknownSocketError;
};

} // namespace Userflux::Test
