// The demo gateway: its API flow, Server-Timing, injected errors and exact counters, over loopback sockets.
#include "gateway.h"

#include "rawhttpclient.h"

#include <QElapsedTimer>
#include <QRegularExpression>
#include <QTest>

#include <nlohmann/json.hpp>

#include <map>
#include <memory>

using namespace Userflux;
using Userflux::Demo::Gateway;
using Userflux::Demo::GatewayOptions;
using Userflux::Test::RawHttpClient;
using Json = nlohmann::json;

namespace {

std::unique_ptr<Gateway> startGateway(double errorRate = 0.0, double latencyScale = 0.0, quint64 seed = 1)
{
    GatewayOptions o;
    o.port = 0;
    o.errorRate = errorRate;
    o.latencyScale = latencyScale;
    o.seed = seed;
    auto g = std::make_unique<Gateway>(o);
    if (!g->start())
        return nullptr;
    return g;
}

Json body(const RawHttpClient::Response &r)
{
    return Json::parse(r.body.toStdString(), nullptr, false);
}

// Server-Timing: "name;dur=1.5, other;dur=2" -> [(name, dur)]; an empty list when malformed.
QList<QPair<QString, double>> serverTiming(const QByteArray &value)
{
    QList<QPair<QString, double>> out;
    for (const QByteArray &entry : value.split(',')) {
        const QList<QByteArray> parts = entry.trimmed().split(';');
        if (parts.size() != 2 || !parts[1].startsWith("dur="))
            return {};
        bool ok = false;
        const double dur = parts[1].mid(4).toDouble(&ok);
        if (!ok || dur < 0 || parts[0].isEmpty())
            return {};
        out.append({QString::fromLatin1(parts[0]), dur});
    }
    return out;
}

QStringList names(const QList<QPair<QString, double>> &timing)
{
    QStringList n;
    for (const auto &t : timing)
        n << t.first;
    return n;
}

QByteArray login(RawHttpClient &c, const QByteArray &user = "alice")
{
    const int before = int(c.responses().size());
    c.sendRequest("POST", "/api/login", {{"Content-Type", "application/json"}},
                  R"({"user":")" + user + R"(","password":"secret"})");
    if (!c.waitForResponses(before + 1))
        return {};
    const Json j = body(c.responses().last());
    return j.is_object() && j.contains("token") ? QByteArray::fromStdString(j["token"].get<std::string>())
                                                 : QByteArray();
}

Json fetchStats(quint16 port)
{
    RawHttpClient c;
    if (!c.connectTo(port))
        return {};
    c.sendRequest("GET", "/__gateway/stats");
    if (!c.waitForResponses(1))
        return {};
    return body(c.responses()[0]);
}

} // namespace

class TestGateway : public QObject {
    Q_OBJECT
private slots:
    void loginThenBrowseThenOrder();
    void unauthorizedAndBadInput();
    void serverTimingNamesTheBackends();
    void gatewayWaitsForTheSimulatedFanOut();
    void injectedErrorsAreCountedExactly();
    void sameSeedSameOutcomes();
    void healthAndControlAreNotCounted();
    void zeroErrorRateNeverFails();
};

void TestGateway::loginThenBrowseThenOrder()
{
    auto g = startGateway();
    QVERIFY(g);
    RawHttpClient c;
    QVERIFY(c.connectTo(g->port()));
    const QByteArray token = login(c);
    QCOMPARE(c.responses().last().status, 200);
    QCOMPARE(token.size(), 32);
    const QByteArray bearer = "Bearer " + token;

    c.sendRequest("GET", "/api/items", {{"Authorization", bearer}});
    c.sendRequest("GET", "/api/items/5");
    c.sendRequest("GET", "/api/items/99");
    c.sendRequest("POST", "/api/orders", {{"Authorization", bearer}}, R"({"item_id": 5, "quantity": 2})");
    QVERIFY(c.waitForResponses(5));
    const auto &r = c.responses();
    QCOMPARE(r[1].status, 200);
    const Json items = body(r[1]);
    QVERIFY(items.is_array());
    QCOMPARE(items.size(), 20u);
    QCOMPARE(items[0]["id"].get<int>(), 1);
    QCOMPARE(r[1].header("Content-Type"), QByteArray("application/json"));
    QCOMPARE(r[2].status, 200);
    QCOMPARE(body(r[2])["id"].get<int>(), 5);
    QCOMPARE(r[3].status, 404);
    QCOMPARE(r[4].status, 201);
    const Json order = body(r[4]);
    QVERIFY(order["order_id"].is_string());
    QCOMPARE(order["quantity"].get<int>(), 2);

    const Json s = g->statsJson();
    QCOMPARE(s["requests"].get<int>(), 5);
    QCOMPARE(s["responses"].get<int>(), 5);
    QCOMPARE(s["errors_5xx"].get<int>(), 0);
    QCOMPARE(s["responses_by_status"]["200"].get<int>(), 3);
    QCOMPARE(s["responses_by_status"]["404"].get<int>(), 1);
    QCOMPARE(s["responses_by_status"]["201"].get<int>(), 1);
    QCOMPARE(s["by_route"]["POST /api/login"]["requests"].get<int>(), 1);
    QCOMPARE(s["by_route"]["GET /api/items"]["requests"].get<int>(), 1);
    QCOMPARE(s["by_route"]["GET /api/items/{id}"]["requests"].get<int>(), 2);
    QCOMPARE(s["by_route"]["POST /api/orders"]["responses_by_status"]["201"].get<int>(), 1);
    QCOMPARE(s["backends"]["payments"]["calls"].get<int>(), 1);
    QCOMPARE(s["backends"]["catalog"]["calls"].get<int>(), 3);
}

void TestGateway::unauthorizedAndBadInput()
{
    auto g = startGateway();
    QVERIFY(g);
    RawHttpClient c;
    QVERIFY(c.connectTo(g->port()));
    c.sendRequest("GET", "/api/items");
    c.sendRequest("GET", "/api/items", {{"Authorization", "Bearer not-a-token"}});
    c.sendRequest("POST", "/api/orders", {}, R"({"item_id": 1, "quantity": 1})");
    c.sendRequest("POST", "/api/login", {}, R"({"user":"bob"})");
    c.sendRequest("POST", "/api/login", {}, "not json");
    c.sendRequest("GET", "/api/login");
    c.sendRequest("GET", "/api/nowhere");
    QVERIFY(c.waitForResponses(7));
    const auto &r = c.responses();
    QCOMPARE(r[0].status, 401);
    QCOMPARE(r[0].header("WWW-Authenticate"), QByteArray("Bearer"));
    QCOMPARE(r[1].status, 401);
    QCOMPARE(r[2].status, 401);
    QCOMPARE(r[3].status, 401);
    QCOMPARE(r[4].status, 400);
    QCOMPARE(r[5].status, 405);
    QCOMPARE(r[6].status, 404);
    for (const auto &resp : r)
        QVERIFY(!serverTiming(resp.header("Server-Timing")).isEmpty());

    // A token from one login is rejected once it is not the one presented.
    const QByteArray token = login(c);
    c.sendRequest("POST", "/api/orders", {{"Authorization", "Bearer " + token}}, R"({"item_id": 1})");
    c.sendRequest("POST", "/api/orders", {{"Authorization", "Bearer " + token}}, R"({"item_id": 77, "quantity": 1})");
    QVERIFY(c.waitForResponses(10));
    QCOMPARE(c.responses()[8].status, 400);
    QCOMPARE(c.responses()[9].status, 404);
    QCOMPARE(g->statsJson()["by_route"]["other"]["requests"].get<int>(), 2);
}

void TestGateway::serverTimingNamesTheBackends()
{
    auto g = startGateway(0.0, 0.05);
    QVERIFY(g);
    RawHttpClient c;
    QVERIFY(c.connectTo(g->port()));
    const QByteArray token = login(c);
    QCOMPARE(names(serverTiming(c.responses().last().header("Server-Timing"))),
             QStringList({"auth", "gateway"}));
    c.sendRequest("GET", "/api/items", {{"Authorization", "Bearer " + token}});
    c.sendRequest("GET", "/api/items/3");
    c.sendRequest("POST", "/api/orders", {{"Authorization", "Bearer " + token}}, R"({"item_id": 3, "quantity": 1})");
    c.sendRequest("GET", "/api/items");
    QVERIFY(c.waitForResponses(5));
    const auto &r = c.responses();
    QCOMPARE(names(serverTiming(r[1].header("Server-Timing"))), QStringList({"catalog", "inventory", "gateway"}));
    QCOMPARE(names(serverTiming(r[2].header("Server-Timing"))),
             QStringList({"catalog", "inventory", "reviews", "gateway"}));
    QCOMPARE(names(serverTiming(r[3].header("Server-Timing"))),
             QStringList({"auth", "inventory", "orders", "payments", "gateway"}));
    QCOMPARE(names(serverTiming(r[4].header("Server-Timing"))), QStringList({"gateway"})); // 401: no backend
    // W3C syntax, one decimal: "catalog;dur=0.4, inventory;dur=0.3, gateway;dur=0.9"
    QVERIFY(QRegularExpression(QStringLiteral(R"(^([a-z]+;dur=\d+\.\d, )+gateway;dur=\d+\.\d$)"))
                .match(QString::fromLatin1(r[1].header("Server-Timing")))
                .hasMatch());
}

void TestGateway::gatewayWaitsForTheSimulatedFanOut()
{
    auto g = startGateway(0.0, 1.0);
    QVERIFY(g);
    RawHttpClient c;
    QVERIFY(c.connectTo(g->port()));
    const QByteArray token = login(c);
    QElapsedTimer t;
    t.start();
    c.sendRequest("POST", "/api/orders", {{"Authorization", "Bearer " + token}}, R"({"item_id": 3, "quantity": 1})");
    QVERIFY(c.waitForResponses(2));
    const qint64 elapsed = t.elapsed();
    const auto timing = serverTiming(c.responses().last().header("Server-Timing"));
    QCOMPARE(timing.size(), 5);
    double sequential = 0;
    for (int i = 0; i < 4; ++i)
        sequential += timing[i].second;
    // Backends in sequence: the gateway's own time covers their sum (timers are whole milliseconds).
    QVERIFY2(timing[4].second >= sequential - 1.0, qPrintable(QString::number(timing[4].second)));
    QVERIFY(elapsed >= qint64(sequential) - 1);

    c.sendRequest("GET", "/api/items", {{"Authorization", "Bearer " + token}});
    QVERIFY(c.waitForResponses(3));
    const auto parallel = serverTiming(c.responses().last().header("Server-Timing"));
    QCOMPARE(parallel.size(), 3);
    const double slowest = std::max(parallel[0].second, parallel[1].second);
    // Backends in parallel: the gateway waits for the slowest, not for the sum.
    QVERIFY(parallel[2].second >= slowest - 1.0);
}

void TestGateway::injectedErrorsAreCountedExactly()
{
    auto g = startGateway(0.5, 0.02, 4242);
    QVERIFY(g);
    constexpr int Clients = 8;
    constexpr int PerClient = 25; // 200 API requests in all, including the logins
    std::vector<std::unique_ptr<RawHttpClient>> clients;
    QList<QByteArray> tokens;
    for (int i = 0; i < Clients; ++i) {
        clients.push_back(std::make_unique<RawHttpClient>());
        QVERIFY(clients.back()->connectTo(g->port()));
        // Retry the login until one succeeds: it can itself be failed by the injection.
        QByteArray token;
        while (token.isEmpty()) {
            token = login(*clients.back(), "user" + QByteArray::number(i));
            QVERIFY(clients.back()->responses().size() < PerClient);
        }
        tokens << token;
    }
    for (int i = 0; i < Clients; ++i) {
        RawHttpClient &c = *clients[std::size_t(i)];
        const QByteArray auth = "Bearer " + tokens[i];
        for (qsizetype n = c.responses().size(); n < PerClient; ++n) {
            switch (n % 4) {
            case 0: c.sendRequest("GET", "/api/items", {{"Authorization", auth}}); break;
            case 1: c.sendRequest("GET", "/api/items/" + QByteArray::number(n % 23 + 1)); break;
            case 2: c.sendRequest("POST", "/api/orders", {{"Authorization", auth}}, R"({"item_id": 2, "quantity": 1})"); break;
            default: c.sendRequest("POST", "/api/login", {}, R"({"user":"x","password":"y"})"); break;
            }
        }
    }
    std::map<int, int> seen;
    int seen5xx = 0;
    for (auto &c : clients) {
        QVERIFY(c->waitForResponses(PerClient, 10000));
        QCOMPARE(c->responses().size(), PerClient);
        for (const auto &r : c->responses()) {
            ++seen[r.status];
            if (r.status >= 500) {
                ++seen5xx;
                QVERIFY(r.status == 500 || r.status == 503);
                const Json j = body(r);
                QVERIFY(j["backend"].is_string());
                // The failing backend is one of those the Server-Timing header lists.
                const QStringList called = names(serverTiming(r.header("Server-Timing")));
                QVERIFY(called.contains(QString::fromStdString(j["backend"].get<std::string>())));
            }
        }
    }
    const Json s = fetchStats(g->port());
    QCOMPARE(s["requests"].get<int>(), Clients * PerClient);
    QCOMPARE(s["responses"].get<int>(), Clients * PerClient);
    QCOMPARE(s["errors_5xx"].get<int>(), seen5xx);
    QCOMPARE(s["injected_errors"].get<int>(), seen5xx);
    for (const auto &[status, count] : seen)
        QCOMPARE(s["responses_by_status"][std::to_string(status)].get<int>(), count);
    int routes5xx = 0;
    for (const auto &[name, route] : s["by_route"].items())
        routes5xx += route["errors_5xx"].get<int>();
    QCOMPARE(routes5xx, seen5xx);
    // About half of the requests that reach a backend (all do here but 404-free items) fail.
    QVERIFY2(seen5xx > 60 && seen5xx < 140, qPrintable(QString::number(seen5xx)));
}

void TestGateway::sameSeedSameOutcomes()
{
    auto run = [](quint64 seed) {
        auto g = startGateway(0.3, 0.0, seed);
        QList<int> statuses;
        RawHttpClient c;
        if (!g || !c.connectTo(g->port()))
            return statuses;
        for (int i = 0; i < 60; ++i)
            c.sendRequest("GET", "/api/items/" + QByteArray::number(i % 20 + 1));
        c.waitForResponses(60);
        for (const auto &r : c.responses())
            statuses << r.status;
        return statuses;
    };
    const QList<int> a = run(99);
    const QList<int> b = run(99);
    const QList<int> other = run(100);
    QCOMPARE(a.size(), 60);
    QCOMPARE(a, b);
    QVERIFY(a != other);
    QVERIFY(a.contains(200));
    QVERIFY(a.contains(503) || a.contains(500));
}

void TestGateway::healthAndControlAreNotCounted()
{
    auto g = startGateway();
    QVERIFY(g);
    RawHttpClient c;
    QVERIFY(c.connectTo(g->port()));
    c.sendRequest("GET", "/health");
    c.sendRequest("GET", "/api/items/1");
    c.sendRequest("GET", "/__gateway/stats");
    QVERIFY(c.waitForResponses(3));
    QCOMPARE(c.responses()[0].status, 200);
    QCOMPARE(body(c.responses()[0])["status"].get<std::string>(), std::string("ok"));
    QCOMPARE(body(c.responses()[2])["requests"].get<int>(), 1);
    c.sendRequest("POST", "/__gateway/reset");
    c.sendRequest("GET", "/__gateway/stats");
    QVERIFY(c.waitForResponses(5));
    const Json s = body(c.responses()[4]);
    QCOMPARE(s["requests"].get<int>(), 0);
    QCOMPARE(s["responses"].get<int>(), 0);
    QCOMPARE(s["responses_by_status"].size(), 0u);
    QCOMPARE(s["by_route"]["GET /api/items/{id}"]["requests"].get<int>(), 0);
}

void TestGateway::zeroErrorRateNeverFails()
{
    auto g = startGateway(0.0, 0.0, 5);
    QVERIFY(g);
    RawHttpClient c;
    QVERIFY(c.connectTo(g->port()));
    for (int i = 0; i < 100; ++i)
        c.sendRequest("GET", "/api/items/" + QByteArray::number(i % 20 + 1));
    QVERIFY(c.waitForResponses(100));
    for (const auto &r : c.responses())
        QCOMPARE(r.status, 200);
    QCOMPARE(g->statsJson()["errors_5xx"].get<int>(), 0);
}

QTEST_GUILESS_MAIN(TestGateway)
#include "tst_gateway.moc"
