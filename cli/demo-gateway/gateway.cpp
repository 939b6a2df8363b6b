#include "gateway.h"

#include <QRandomGenerator>
#include <QTimer>

#include <algorithm>
#include <cmath>
#include <functional>

namespace Userflux::Demo {

namespace {

enum Route { RouteLogin, RouteItems, RouteItem, RouteOrders, RouteOther, RouteCount };
enum Backend { Auth, Catalog, Inventory, Reviews, Orders, Payments, BackendCount };

// Simulated latency of one backend call: log-normal around `medianMs`, with an occasional slow tail.
struct BackendModel {
    double medianMs;
    double sigma;
    double tailProbability;
    double tailMinFactor;
    double tailMaxFactor;
};
constexpr std::array<BackendModel, BackendCount> Models{{
    {3.0, 0.25, 0.01, 2.0, 3.0},   // auth
    {8.0, 0.35, 0.01, 2.0, 4.0},   // catalog
    {5.0, 0.30, 0.00, 1.0, 1.0},   // inventory
    {12.0, 0.40, 0.02, 2.0, 3.0},  // reviews
    {15.0, 0.30, 0.01, 2.0, 3.0},  // orders
    {25.0, 0.35, 0.04, 3.0, 8.0},  // payments: the slow one, with a real tail
}};
constexpr double GatewayOverheadMs = 0.3;

struct Item {
    int id;
    const char *name;
    const char *category;
    double price;
    int stock;
    double rating;
    int reviews;
};
constexpr std::array<Item, 20> Items{{
    {1, "Espresso machine", "kitchen", 249.00, 42, 4.6, 318},
    {2, "Burr grinder", "kitchen", 129.50, 65, 4.4, 201},
    {3, "Pour-over kettle", "kitchen", 59.90, 120, 4.7, 512},
    {4, "Cast-iron skillet", "kitchen", 39.99, 300, 4.8, 1204},
    {5, "Chef's knife", "kitchen", 89.00, 80, 4.5, 640},
    {6, "Trail running shoes", "outdoor", 119.00, 75, 4.3, 389},
    {7, "Ultralight tent", "outdoor", 349.00, 18, 4.6, 97},
    {8, "Sleeping bag", "outdoor", 179.00, 33, 4.4, 150},
    {9, "Headlamp", "outdoor", 34.95, 260, 4.2, 833},
    {10, "Water filter", "outdoor", 44.50, 140, 4.5, 421},
    {11, "Mechanical keyboard", "electronics", 139.00, 55, 4.6, 977},
    {12, "Noise-cancelling headphones", "electronics", 299.00, 40, 4.7, 2210},
    {13, "USB-C dock", "electronics", 189.00, 62, 4.1, 305},
    {14, "27-inch monitor", "electronics", 329.00, 25, 4.5, 688},
    {15, "Webcam", "electronics", 79.00, 110, 3.9, 254},
    {16, "Desk lamp", "home", 49.00, 90, 4.4, 172},
    {17, "Standing desk", "home", 499.00, 12, 4.6, 431},
    {18, "Office chair", "home", 389.00, 20, 4.5, 509},
    {19, "Bookshelf", "home", 159.00, 30, 4.2, 88},
    {20, "Wool blanket", "home", 69.00, 150, 4.8, 366},
}};

const char *const RouteNames[RouteCount] = {"POST /api/login", "GET /api/items", "GET /api/items/{id}",
                                             "POST /api/orders", "other"};
const char *const BackendNames[BackendCount] = {"auth", "catalog", "inventory", "reviews", "orders", "payments"};

// splitmix64: a tiny, well-mixed hash, so request n's random stream depends only on (seed, n) and not on how
// many numbers earlier requests happened to draw.
quint64 mix(quint64 x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

double uniform01(std::mt19937_64 &rng)
{
    return double(rng() >> 11) * 0x1.0p-53;
}

// Standard normal by Box-Muller on our own uniform draws: std::normal_distribution is not specified bit for bit
// across standard libraries, and reproducible latencies are part of the demo's promise.
double standardNormal(std::mt19937_64 &rng)
{
    const double u1 = std::max(uniform01(rng), 1e-300);
    const double u2 = uniform01(rng);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

double sampleLatency(int backend, std::mt19937_64 &rng)
{
    const BackendModel &m = Models[std::size_t(backend)];
    double ms = m.medianMs * std::exp(m.sigma * standardNormal(rng));
    if (m.tailProbability > 0 && uniform01(rng) < m.tailProbability)
        ms *= m.tailMinFactor + (m.tailMaxFactor - m.tailMinFactor) * uniform01(rng);
    return std::min(ms, m.medianMs * 20);
}

nlohmann::json itemSummary(const Item &item)
{
    return {{"id", item.id}, {"name", item.name}, {"category", item.category}, {"price", item.price},
            {"in_stock", item.stock > 0}};
}

// The catalog never changes, so its JSON is built once: /api/items is the hottest route of the quick start.
const QByteArray &itemsJson()
{
    static const QByteArray json = [] {
        nlohmann::json list = nlohmann::json::array();
        for (const Item &item : Items)
            list.push_back(itemSummary(item));
        return QByteArray::fromStdString(list.dump());
    }();
    return json;
}

const QByteArray &itemJson(int id)
{
    static const std::vector<QByteArray> json = [] {
        std::vector<QByteArray> all;
        for (const Item &item : Items) {
            nlohmann::json j = itemSummary(item);
            j["stock"] = item.stock;
            j["rating"] = item.rating;
            j["reviews"] = item.reviews;
            all.push_back(QByteArray::fromStdString(j.dump()));
        }
        return all;
    }();
    return json[std::size_t(id - 1)];
}

QByteArray errorJson(const char *error, const QString &message, const char *backend = nullptr)
{
    nlohmann::json j{{"error", error}, {"message", message.toStdString()}};
    if (backend)
        j["backend"] = backend;
    return QByteArray::fromStdString(j.dump());
}

QByteArray formatMs(double ms)
{
    return QByteArray::number(ms, 'f', 1);
}

} // namespace

struct Gateway::Call {
    int backend;
    double ms;
    bool failed = false;
};

// What one API request does: backend calls in stages (calls within a stage run in parallel, stages run in
// sequence), and the response. Built when the request arrives; the response goes out once the simulated time
// has passed.
struct Gateway::Plan {
    std::vector<std::vector<Call>> stages;
    int status = 200;
    QByteArray body;
    Http::Headers headers;
    std::function<QByteArray()> makeBody; // side effects (token, order id) that only a success may have

    void call(std::vector<int> backends, std::mt19937_64 &rng)
    {
        std::vector<Call> stage;
        for (int b : backends)
            stage.push_back({b, sampleLatency(b, rng)});
        stages.push_back(std::move(stage));
    }
    void answer(int s, QByteArray b)
    {
        status = s;
        body = std::move(b);
    }
};

Gateway::Gateway(GatewayOptions options, QObject *parent)
    : QObject(parent), m_options(std::move(options)), m_server(std::make_unique<Http::Server>(this)),
      m_routes(RouteCount), m_backendCalls(BackendCount)
{
    m_server->setHandler([this](const Http::Request &request, Http::Responder responder) {
        handle(request, std::move(responder));
    });
}

Gateway::~Gateway() = default;

Result<void> Gateway::start()
{
    if (!m_server->listen(m_options.address, m_options.port)) {
        return Error{"listen", QStringLiteral("cannot listen on %1:%2: %3")
                                   .arg(m_options.address.toString())
                                   .arg(m_options.port)
                                   .arg(m_server->errorString())};
    }
    return {};
}

quint16 Gateway::port() const
{
    return m_server->port();
}

QUrl Gateway::baseUrl() const
{
    QUrl url;
    url.setScheme(QStringLiteral("http"));
    url.setHost(m_server->address().toString());
    url.setPort(m_server->port());
    return url;
}

const Http::ServerStats &Gateway::serverStats() const
{
    return m_server->stats();
}

const std::vector<QString> &Gateway::routeNames()
{
    static const std::vector<QString> names(std::begin(RouteNames), std::end(RouteNames));
    return names;
}

const std::vector<QString> &Gateway::backendNames()
{
    static const std::vector<QString> names(std::begin(BackendNames), std::end(BackendNames));
    return names;
}

void Gateway::handle(const Http::Request &request, Http::Responder responder)
{
    const QString &path = request.path;
    const QByteArray &method = request.method;
    if (path.startsWith(QLatin1String("/api/")) || path == QLatin1String("/api")) {
        handleApi(request, std::move(responder));
        return;
    }
    auto methodNotAllowed = [&](const QByteArray &allow) {
        responder.sendJson(405, errorJson("method_not_allowed", QStringLiteral("use %1").arg(allow)),
                           {{"Allow", allow}});
    };
    if (path == QLatin1String("/health")) {
        if (method == "GET" || method == "HEAD")
            responder.sendJson(200, R"({"status":"ok"})");
        else
            methodNotAllowed("GET");
    } else if (path == QLatin1String("/__gateway/stats")) {
        if (method == "GET" || method == "HEAD")
            responder.sendJson(200, QByteArray::fromStdString(statsJson().dump()));
        else
            methodNotAllowed("GET");
    } else if (path == QLatin1String("/__gateway/reset")) {
        if (method == "POST") {
            resetStats();
            responder.sendJson(200, R"({"reset":true})");
        } else {
            methodNotAllowed("POST");
        }
    } else if (path == QLatin1String("/")) {
        Http::Response r;
        r.headers.append({QByteArray("Content-Type"), QByteArray("text/plain; charset=utf-8")});
        r.body = "userflux-demo-gateway: a demo e-commerce Gateway API for Userflux.\n"
                 "POST /api/login {user,password} | GET /api/items | GET /api/items/{id} | "
                 "POST /api/orders {item_id,quantity} | GET /health | GET /__gateway/stats | "
                 "POST /__gateway/reset\n";
        responder.send(r);
    } else {
        responder.sendJson(404, errorJson("not_found", QStringLiteral("no route %1").arg(path)));
    }
}

void Gateway::handleApi(const Http::Request &request, Http::Responder responder)
{
    QElapsedTimer started;
    started.start();
    const quint64 n = ++m_sequence;
    // Two streams per request: latencies and the error decision, so that turning errors on does not change
    // the latencies a given request would have had.
    std::mt19937_64 rng(mix(m_options.seed ^ mix(n)));
    std::mt19937_64 errorRng(mix(m_options.seed ^ mix(n) ^ 0x5bd1e995ULL));

    const QString &path = request.path;
    const QByteArray &method = request.method;
    const bool get = method == "GET" || method == "HEAD";
    int route = RouteOther;
    Plan plan;
    auto methodNotAllowed = [&](const QByteArray &allow) {
        plan.answer(405, errorJson("method_not_allowed", QStringLiteral("use %1").arg(allow)));
        plan.headers.append({"Allow", allow});
    };
    if (path == QLatin1String("/api/login")) {
        if (method == "POST") {
            route = RouteLogin;
            plan = planLogin(request, rng);
        } else {
            methodNotAllowed("POST");
        }
    } else if (path == QLatin1String("/api/items")) {
        if (get) {
            route = RouteItems;
            plan = planItems(request, rng);
        } else {
            methodNotAllowed("GET");
        }
    } else if (path.startsWith(QLatin1String("/api/items/")) && path.count(QLatin1Char('/')) == 3) {
        if (get) {
            route = RouteItem;
            bool ok = false;
            const int id = path.mid(11).toInt(&ok);
            plan = planItem(request, ok ? id : -1, rng);
        } else {
            methodNotAllowed("GET");
        }
    } else if (path == QLatin1String("/api/orders")) {
        if (method == "POST") {
            route = RouteOrders;
            plan = planOrder(request, rng);
        } else {
            methodNotAllowed("POST");
        }
    } else {
        plan.answer(404, errorJson("not_found", QStringLiteral("no route %1").arg(path)));
    }

    ++m_requests;
    ++m_routes[std::size_t(route)].requests;
    ++m_inFlight;
    injectError(plan, errorRng);

    double totalMs = GatewayOverheadMs;
    for (const auto &stage : plan.stages) {
        double slowest = 0;
        for (const Call &c : stage) {
            slowest = std::max(slowest, c.ms);
            ++m_backendCalls[std::size_t(c.backend)].first;
            if (c.failed)
                ++m_backendCalls[std::size_t(c.backend)].second;
        }
        totalMs += slowest;
    }
    const double delayMs = totalMs * m_options.latencyScale;
    const quint64 generation = m_generation;
    if (m_options.latencyScale <= 0 || delayMs < 0.5) {
        deliver(route, generation, plan, started, std::move(responder));
        return;
    }
    // A precise timer: the default coarse one may be 5% late, which would blur the demo's latency shape.
    QTimer::singleShot(qRound(delayMs), Qt::PreciseTimer, this,
                       [this, route, generation, plan = std::move(plan), started, responder]() {
                           deliver(route, generation, plan, started, responder);
                       });
}

Gateway::Plan Gateway::planLogin(const Http::Request &request, std::mt19937_64 &rng)
{
    Plan plan;
    const nlohmann::json body = nlohmann::json::parse(request.body.begin(), request.body.end(), nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
        plan.answer(400, errorJson("invalid_json", QStringLiteral("expected a JSON object {user, password}")));
        return plan;
    }
    plan.call({Auth}, rng);
    auto field = [&](const char *name) -> QString {
        auto it = body.find(name);
        if (it == body.end() || !it->is_string())
            return {};
        return QString::fromStdString(it->get<std::string>());
    };
    const QString user = field("user");
    const QString password = field("password");
    if (user.isEmpty() || password.isEmpty()) {
        plan.answer(401, errorJson("invalid_credentials", QStringLiteral("user and password are required")));
        return plan;
    }
    plan.status = 200;
    plan.makeBody = [this, user] {
        const QByteArray token = issueToken(user);
        return QByteArray::fromStdString(
            nlohmann::json{{"token", token.toStdString()}, {"user", user.toStdString()}, {"expires_in", 3600}}
                .dump());
    };
    return plan;
}

Gateway::Plan Gateway::planItems(const Http::Request &request, std::mt19937_64 &rng)
{
    Plan plan;
    if (!tokenValid(request)) {
        // Checked by the gateway itself (a signed-token check needs no backend).
        plan.answer(401, errorJson("unauthorized", QStringLiteral("missing or unknown bearer token")));
        plan.headers.append({QByteArray("WWW-Authenticate"), QByteArray("Bearer")});
        return plan;
    }
    plan.call({Catalog, Inventory}, rng);
    plan.answer(200, itemsJson());
    return plan;
}

Gateway::Plan Gateway::planItem(const Http::Request &, int id, std::mt19937_64 &rng)
{
    Plan plan;
    plan.call({Catalog, Inventory, Reviews}, rng);
    if (id < 1 || id > int(Items.size()))
        plan.answer(404, errorJson("not_found", QStringLiteral("no item %1").arg(id)));
    else
        plan.answer(200, itemJson(id));
    return plan;
}

Gateway::Plan Gateway::planOrder(const Http::Request &request, std::mt19937_64 &rng)
{
    Plan plan;
    plan.call({Auth}, rng);
    if (!tokenValid(request)) {
        plan.answer(401, errorJson("unauthorized", QStringLiteral("missing or unknown bearer token")));
        plan.headers.append({QByteArray("WWW-Authenticate"), QByteArray("Bearer")});
        return plan;
    }
    const nlohmann::json body = nlohmann::json::parse(request.body.begin(), request.body.end(), nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("item_id") || !body["item_id"].is_number_integer()
        || !body.contains("quantity") || !body["quantity"].is_number_integer()) {
        plan.answer(400, errorJson("invalid_order", QStringLiteral("expected {item_id: integer, quantity: integer}")));
        return plan;
    }
    const qint64 itemId = body["item_id"].get<qint64>();
    const qint64 quantity = body["quantity"].get<qint64>();
    if (quantity < 1 || quantity > 100) {
        plan.answer(400, errorJson("invalid_order", QStringLiteral("quantity must be 1..100")));
        return plan;
    }
    plan.call({Inventory}, rng);
    if (itemId < 1 || itemId > qint64(Items.size())) {
        plan.answer(404, errorJson("not_found", QStringLiteral("no item %1").arg(itemId)));
        return plan;
    }
    plan.call({Orders}, rng);
    plan.call({Payments}, rng);
    const Item &item = Items[std::size_t(itemId - 1)];
    plan.status = 201;
    plan.makeBody = [this, item, quantity] {
        const QByteArray id = "ord-" + QByteArray::number(++m_orderCounter).rightJustified(6, '0');
        return QByteArray::fromStdString(nlohmann::json{{"order_id", id.toStdString()},
                                                        {"item_id", item.id},
                                                        {"quantity", quantity},
                                                        {"total", std::round(item.price * double(quantity) * 100) / 100},
                                                        {"status", "confirmed"}}
                                             .dump());
    };
    return plan;
}

// With probability errorRate, one of the backends the request reaches fails: the gateway answers 503 (or, one
// time in four, 500) naming it, and backends after it in the sequence are never called.
void Gateway::injectError(Plan &plan, std::mt19937_64 &rng)
{
    if (m_options.errorRate <= 0 || plan.stages.empty())
        return;
    if (uniform01(rng) >= m_options.errorRate)
        return;
    std::size_t calls = 0;
    for (const auto &stage : plan.stages)
        calls += stage.size();
    std::size_t pick = std::size_t(uniform01(rng) * double(calls));
    pick = std::min(pick, calls - 1);
    const bool unavailable = uniform01(rng) < 0.75;
    for (std::size_t s = 0; s < plan.stages.size(); ++s) {
        if (pick >= plan.stages[s].size()) {
            pick -= plan.stages[s].size();
            continue;
        }
        Call &failed = plan.stages[s][pick];
        failed.failed = true;
        plan.stages.resize(s + 1);
        const char *name = BackendNames[failed.backend];
        plan.status = unavailable ? 503 : 500;
        plan.body = errorJson(unavailable ? "backend_unavailable" : "backend_error",
                              QStringLiteral("backend %1 %2").arg(QLatin1String(name),
                                                                  unavailable ? QStringLiteral("is unavailable")
                                                                              : QStringLiteral("failed")),
                              name);
        plan.headers.clear();
        plan.makeBody = nullptr;
        ++m_injected;
        return;
    }
}

void Gateway::deliver(int route, quint64 generation, const Plan &plan, const QElapsedTimer &started,
                      Http::Responder responder)
{
    if (m_inFlight > 0)
        --m_inFlight;
    const bool counted = generation == m_generation;
    if (!responder.isConnected()) {
        if (counted)
            ++m_clientGone;
        return;
    }
    QByteArray timing;
    for (const auto &stage : plan.stages) {
        for (const Call &c : stage) {
            timing += BackendNames[c.backend];
            timing += ";dur=";
            timing += formatMs(c.ms * m_options.latencyScale);
            timing += ", ";
        }
    }
    timing += "gateway;dur=";
    timing += formatMs(double(started.nsecsElapsed()) / 1e6);

    Http::Headers headers = plan.headers;
    headers.append({"Server-Timing", timing});
    responder.sendJson(plan.status, plan.makeBody ? plan.makeBody() : plan.body, headers);

    if (counted) {
        RouteCounters &r = m_routes[std::size_t(route)];
        ++m_responses;
        ++m_byStatus[plan.status];
        ++r.byStatus[plan.status];
        if (plan.status >= 500 && plan.status < 600) {
            ++m_errors5xx;
            ++r.errors5xx;
        }
    }
}

bool Gateway::tokenValid(const Http::Request &request) const
{
    const QByteArray auth = request.header("Authorization");
    if (auth.size() <= 7 || auth.first(7).compare("Bearer ", Qt::CaseInsensitive) != 0)
        return false;
    return m_tokens.contains(auth.mid(7).trimmed());
}

QByteArray Gateway::issueToken(const QString &user)
{
    // Random, not derived from the seed: tokens are secrets in spirit even in a demo.
    quint64 words[2];
    QRandomGenerator::system()->fillRange(words);
    const QByteArray token = QByteArray(reinterpret_cast<const char *>(words), sizeof words).toHex();
    m_tokens.insert(token, user);
    m_tokenOrder.push_back(token);
    constexpr std::size_t MaxTokens = 1'000'000;
    while (m_tokenOrder.size() > MaxTokens) {
        m_tokens.remove(m_tokenOrder.front());
        m_tokenOrder.pop_front();
    }
    return token;
}

// GET /__gateway/stats:
// {
//   "requests": n,                     // /api/* requests since the last reset (not /health, not /__gateway/*)
//   "responses": n,                    // responses sent to those requests
//   "responses_by_status": {"200": n, "401": n, "503": n, ...},   // only statuses seen
//   "errors_5xx": n,                   // responses with a 5xx status (injected failures are the only source)
//   "injected_errors": n,              // requests the error injection failed (their responses may still be due)
//   "client_gone": n,                  // responses not sent because the client had disconnected
//   "in_flight": n,                    // requests waiting for their simulated backends (a gauge, not reset)
//   "by_route": {"POST /api/login": {"requests": n, "responses_by_status": {...}, "errors_5xx": n},
//                "GET /api/items": {...}, "GET /api/items/{id}": {...}, "POST /api/orders": {...},
//                "other": {...}},      // "other": unknown /api paths and wrong methods
//   "backends": {"auth": {"calls": n, "failures": n}, ...},     // all six backends
//   "config": {"error_rate": p, "latency_scale": f, "seed": s}
// }
// requests == responses + client_gone + (requests still in flight that arrived after the reset).
nlohmann::json Gateway::statsJson() const
{
    auto statuses = [](const std::map<int, quint64> &byStatus) {
        nlohmann::json j = nlohmann::json::object();
        for (const auto &[status, count] : byStatus)
            j[std::to_string(status)] = count;
        return j;
    };
    nlohmann::json routes = nlohmann::json::object();
    for (int r = 0; r < RouteCount; ++r) {
        const RouteCounters &c = m_routes[std::size_t(r)];
        routes[RouteNames[r]] = {{"requests", c.requests},
                                 {"responses_by_status", statuses(c.byStatus)},
                                 {"errors_5xx", c.errors5xx}};
    }
    nlohmann::json backends = nlohmann::json::object();
    for (int b = 0; b < BackendCount; ++b) {
        backends[BackendNames[b]] = {{"calls", m_backendCalls[std::size_t(b)].first},
                                     {"failures", m_backendCalls[std::size_t(b)].second}};
    }
    return {{"requests", m_requests},
            {"responses", m_responses},
            {"responses_by_status", statuses(m_byStatus)},
            {"errors_5xx", m_errors5xx},
            {"injected_errors", m_injected},
            {"client_gone", m_clientGone},
            {"in_flight", m_inFlight},
            {"by_route", routes},
            {"backends", backends},
            {"config",
             {{"error_rate", m_options.errorRate},
              {"latency_scale", m_options.latencyScale},
              {"seed", m_options.seed}}}};
}

void Gateway::resetStats()
{
    ++m_generation;
    m_requests = m_responses = m_errors5xx = m_injected = m_clientGone = 0;
    m_byStatus.clear();
    m_routes.assign(RouteCount, RouteCounters{});
    m_backendCalls.assign(BackendCount, {0, 0});
}

} // namespace Userflux::Demo
