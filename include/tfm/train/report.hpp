// tfm/train/report.hpp — what a training run tells the outside world: a progress bar (or plain
// lines when the output is a file), a JSON-lines metrics log that a resumed run keeps appending
// to, and a self-contained SVG plot of the train and validation loss. Needs nlohmann/json (the
// tfm::text CMake target).
#pragma once
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/ioctl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/file.hpp"

namespace tfm::train {

// One optimiser step. `step` counts the steps done so far (1 after the first), so the ETA is
// elapsed_s / step * (total_steps - step).
struct step_metrics {
  std::int64_t step = 0, total_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0;
  std::int64_t skipped = 0;  // steps skipped so far (non-finite gradients)
  double loss_scale = 0;     // dynamic loss scaling: the current scale (0: not in use)
  std::int64_t overflows = 0;  // of the skipped steps, those whose scaled gradients overflowed
};

// One evaluation pass. bits_per_byte is NaN when the byte count of the eval text is unknown.
struct eval_metrics {
  std::int64_t step = 0;
  double loss = 0, perplexity = 0, bits_per_byte = std::numeric_limits<double>::quiet_NaN();
};

namespace detail {

// printf into a std::string (a diverging loss printed with %f can be hundreds of digits).
template <class... Args>
std::string format(const char* fmt, Args... args) {
  char buf[256];
  const int n = std::snprintf(buf, sizeof buf, fmt, args...);
  if (n < 0) return {};
  if (n < int(sizeof buf)) return std::string(buf, static_cast<std::size_t>(n));
  std::string s(static_cast<std::size_t>(n) + 1, '\0');
  std::snprintf(s.data(), s.size(), fmt, args...);
  s.pop_back();
  return s;
}

// Locale-independent fixed-point text: SVG and JSON need '.', whatever the user's locale says.
inline std::string fixed(double v, int decimals) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  if (r.ec == std::errc{}) return std::string(buf, r.ptr);
  // Too long for fixed notation (|v| ~ 1e50): general notation always fits.
  const auto g = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 6);
  return std::string(buf, g.ptr);
}

// "step/total | loss .. | lr .. | .. tok/s | eta h:mm:ss" — shared by the bar and the plain lines.
inline std::string render_status(const step_metrics& m, const std::string& eta) {
  std::string s = format("%lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | eta %s", static_cast<long long>(m.step),
                         static_cast<long long>(m.total_steps), m.loss, m.lr, m.tokens_per_s, eta.c_str());
  if (m.skipped > 0) s += format(" | skipped %lld", static_cast<long long>(m.skipped));
  if (m.loss_scale > 0) s += format(" | scale %.0f", m.loss_scale);
  return s;
}

inline double eta_seconds(const step_metrics& m) {
  if (m.step <= 0 || m.total_steps <= 0 || !(m.elapsed_s >= 0)) return std::numeric_limits<double>::quiet_NaN();
  const auto left = std::max<std::int64_t>(0, m.total_steps - m.step);
  return m.elapsed_s / double(m.step) * double(left);
}

}  // namespace detail

inline std::string render_bar(const step_metrics& m, int width);

// Training progress on `out` (not owned). On a terminal, one line redrawn in place at most ~10
// times a second (the final step always); otherwise one plain line per `plain_every` steps, so a
// log file stays readable. force_plain wins over force_tty.
class progress {
 public:
  static constexpr int max_bar_width = 30;
  static constexpr double min_redraw_s = 0.1;

  explicit progress(std::FILE* out = stderr, bool force_tty = false, bool force_plain = false,
                    std::int64_t plain_every = 1)
      : out_(out), plain_every_(plain_every) {
    expects(out != nullptr, "progress: output stream is null");
    expects(plain_every >= 1, "progress: plain_every must be >= 1, got ", plain_every);
    const char* term = std::getenv("TERM");
    const bool dumb = term != nullptr && std::string_view(term) == "dumb";
    tty_ = !force_plain && (force_tty || (::isatty(::fileno(out)) != 0 && !dumb));
  }
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  // A bar left open would make the next output start mid-line.
  ~progress() {
    if (tty_ && open_) std::fputc('\n', out_);
  }

  bool is_tty() const { return tty_; }

  void update(const step_metrics& m) {
    last_ = m;
    have_last_ = true;
    const bool final_step = m.total_steps > 0 && m.step >= m.total_steps;
    if (tty_) {
      const auto now = clock::now();
      if (!final_step && drawn_once_ && std::chrono::duration<double>(now - last_draw_).count() < min_redraw_s) {
        last_shown_ = false;
        return;
      }
      last_draw_ = now;
      drawn_once_ = true;
      draw_bar();
    } else {
      if (!final_step && m.step % plain_every_ != 0) {
        last_shown_ = false;
        return;
      }
      print_plain();
    }
  }

  // A line of its own (an eval result, a checkpoint saved) that leaves the bar intact below it.
  void message(std::string_view text) {
    if (tty_ && open_) std::fputs("\r\x1b[K", out_);
    std::fwrite(text.data(), 1, text.size(), out_);
    std::fputc('\n', out_);
    if (tty_ && open_) {
      open_ = false;
      draw_bar();
    }
    std::fflush(out_);
  }

  // Shows the last update if rate limiting or plain_every hid it, then ends the line.
  void finish() {
    if (have_last_ && !last_shown_) {
      if (tty_) draw_bar();
      else print_plain();
    }
    if (tty_ && open_) std::fputc('\n', out_);
    open_ = false;
    std::fflush(out_);
  }

  // h:mm:ss, rounded to the second; "?:??:??" when unknown (no step done yet, NaN, negative).
  static std::string format_eta(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?:??:??";
    // Clamped so the integer conversion stays defined; a million hours is "never" anyway.
    const auto s = static_cast<long long>(std::llround(std::min(seconds, 3.6e9)));
    return detail::format("%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  }

 private:
  using clock = std::chrono::steady_clock;

  // Columns of the terminal, 0 when unknown (not a terminal, or forced tty on a file).
  int columns() const {
    winsize ws{};
    if (::ioctl(::fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 0;
  }

  void draw_bar() {
    // A line wider than the terminal wraps, and '\r' then redraws only its last row: shrink the
    // bar first, then cut the text.
    const int cols = columns();
    int width = max_bar_width;
    std::string line;
    if (cols > 0) {
      const int status = int(render_status().size());
      width = std::clamp(cols - 1 - status - 3, 5, max_bar_width);
      line = render_bar(last_, width);
      if (int(line.size()) > cols - 1) line.resize(static_cast<std::size_t>(std::max(cols - 1, 0)));
    } else {
      line = render_bar(last_, width);
    }
    std::fputs("\r", out_);
    std::fputs(line.c_str(), out_);
    std::fputs("\x1b[K", out_);
    std::fflush(out_);
    open_ = true;
    last_shown_ = true;
  }

  void print_plain() {
    std::fprintf(out_, "step %s\n", render_status().c_str());
    std::fflush(out_);
    last_shown_ = true;
  }

  std::string render_status() const { return detail::render_status(last_, format_eta(detail::eta_seconds(last_))); }

  std::FILE* out_;
  std::int64_t plain_every_;
  bool tty_ = false;
  bool open_ = false;        // a bar is on screen without its newline
  bool have_last_ = false;   // update() was called at least once
  bool last_shown_ = false;  // the last update is what the user sees
  bool drawn_once_ = false;
  step_metrics last_{};
  clock::time_point last_draw_{};
};

// "[#####.....] step/total | loss .. | lr .. | .. tok/s | eta h:mm:ss", with `width` cells in the
// bar. Pure, so the text can be tested without a terminal.
inline std::string render_bar(const step_metrics& m, int width) {
  width = std::max(width, 1);
  const double frac = m.total_steps > 0 ? std::clamp(double(m.step) / double(m.total_steps), 0.0, 1.0) : 0.0;
  const int fill = std::min(width, static_cast<int>(frac * width));
  std::string s;
  s.reserve(static_cast<std::size_t>(width) + 96);
  s += '[';
  s.append(static_cast<std::size_t>(fill), '#');
  s.append(static_cast<std::size_t>(width - fill), '.');
  s += "] ";
  s += detail::render_status(m, progress::format_eta(detail::eta_seconds(m)));
  return s;
}

// What metrics_log::read finds in a log, in file order.
struct metrics_history {
  std::vector<step_metrics> train;  // total_steps is not logged: 0 here
  std::vector<eval_metrics> eval;
};

// Appends one JSON object per line to a file, flushed line by line so a crash loses at most the
// line being written. Opened in append mode: a resumed run continues the same log. Non-finite
// values are written as null (JSON has no NaN) and read back as NaN.
//   {"type":"train","step":..,"loss":..,"lr":..,"grad_norm":..,"tokens_per_s":..,"elapsed_s":..,"skipped":..}
//   {"type":"eval","step":..,"loss":..,"perplexity":..,"bits_per_byte":..}
class metrics_log {
 public:
  explicit metrics_log(std::filesystem::path path) : path_(std::move(path)) {
    // A run killed mid-line leaves a file without its final newline; start on a fresh line so the
    // next record is not glued to the broken one.
    bool needs_newline = false;
    if (std::FILE* r = std::fopen(path_.c_str(), "rb")) {
      if (std::fseek(r, -1, SEEK_END) == 0) needs_newline = std::fgetc(r) != '\n';
      std::fclose(r);
    }
    f_ = std::fopen(path_.c_str(), "a");
    if (f_ == nullptr) throw error(detail_io("cannot open ", errno));
    if (needs_newline) put_line("");
  }
  metrics_log(const metrics_log&) = delete;
  metrics_log& operator=(const metrics_log&) = delete;
  metrics_log(metrics_log&& o) noexcept : path_(std::move(o.path_)), f_(std::exchange(o.f_, nullptr)) {}
  metrics_log& operator=(metrics_log&& o) noexcept {
    if (this != &o) {
      if (f_ != nullptr) std::fclose(f_);
      path_ = std::move(o.path_);
      f_ = std::exchange(o.f_, nullptr);
    }
    return *this;
  }
  ~metrics_log() {
    if (f_ != nullptr) std::fclose(f_);
  }

  const std::filesystem::path& path() const { return path_; }

  void write(const step_metrics& m) {
    nlohmann::ordered_json j;
    j["type"] = "train";
    j["step"] = m.step;
    j["loss"] = num(m.loss);
    j["lr"] = num(m.lr);
    j["grad_norm"] = num(m.grad_norm);
    j["tokens_per_s"] = num(m.tokens_per_s);
    j["elapsed_s"] = num(m.elapsed_s);
    j["skipped"] = m.skipped;
    if (m.loss_scale > 0) {  // only with loss scaling, so plain runs keep the short record
      j["loss_scale"] = num(m.loss_scale);
      j["overflows"] = m.overflows;
    }
    put_line(j.dump());
  }

  void write(const eval_metrics& m) {
    nlohmann::ordered_json j;
    j["type"] = "eval";
    j["step"] = m.step;
    j["loss"] = num(m.loss);
    j["perplexity"] = num(m.perplexity);
    j["bits_per_byte"] = num(m.bits_per_byte);
    put_line(j.dump());
  }

  // Parses a log back. Blank lines and unknown "type"s (records a later version may add) are
  // skipped; a line that is not a JSON object with a known type and its fields throws, naming the
  // file and the line.
  static metrics_history read(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int e = errno;
      throw error(tfm::detail::concat("metrics_log: cannot read ", path.string(), ": ", std::strerror(e)));
    }
    metrics_history h;
    std::string line;
    std::int64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const auto bad = [&](std::string_view why) {
        return error(tfm::detail::concat("metrics_log: ", path.string(), ":", line_no, ": ", why));
      };
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) throw bad("not a JSON object");
      const auto type = j.find("type");
      if (type == j.end() || !type->is_string()) throw bad("no \"type\" string");
      const auto get_int = [&](const char* key) -> std::int64_t {
        const auto it = j.find(key);
        if (it == j.end() || !it->is_number_integer())
          throw bad(tfm::detail::concat("\"", key, "\" is not an integer"));
        return it->get<std::int64_t>();
      };
      const auto get_num = [&](const char* key) -> double {
        const auto it = j.find(key);
        if (it == j.end()) throw bad(tfm::detail::concat("no \"", key, "\""));
        if (it->is_null()) return std::numeric_limits<double>::quiet_NaN();
        if (!it->is_number()) throw bad(tfm::detail::concat("\"", key, "\" is not a number"));
        return it->get<double>();
      };
      if (*type == "train") {
        step_metrics m;
        m.step = get_int("step");
        m.loss = get_num("loss");
        m.lr = get_num("lr");
        m.grad_norm = get_num("grad_norm");
        m.tokens_per_s = get_num("tokens_per_s");
        m.elapsed_s = get_num("elapsed_s");
        m.skipped = get_int("skipped");
        if (j.contains("loss_scale")) {
          m.loss_scale = get_num("loss_scale");
          m.overflows = get_int("overflows");
        }
        h.train.push_back(m);
      } else if (*type == "eval") {
        eval_metrics m;
        m.step = get_int("step");
        m.loss = get_num("loss");
        m.perplexity = get_num("perplexity");
        m.bits_per_byte = get_num("bits_per_byte");
        h.eval.push_back(m);
      }
    }
    if (in.bad()) throw error(tfm::detail::concat("metrics_log: read failed: ", path.string()));
    return h;
  }

 private:
  static nlohmann::ordered_json num(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nullptr; }

  std::string detail_io(std::string_view what, int err) const {
    return tfm::detail::concat("metrics_log: ", what, path_.string(), ": ", std::strerror(err));
  }

  void put_line(const std::string& s) {
    if (std::fputs(s.c_str(), f_) == EOF || std::fputc('\n', f_) == EOF || std::fflush(f_) != 0)
      throw error(detail_io("write failed: ", errno));
  }

  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
};

namespace detail {

// Axis bounds widened to multiples of a 1/2/5 x 10^k step, so the end labels enclose the data.
struct axis_ticks {
  double lo, hi, step;
};

inline axis_ticks nice_ticks(double lo, double hi, int target = 6) {
  if (!(hi > lo)) {  // one value: give it some room
    const double pad = std::max(std::abs(lo) * 0.1, 0.5);
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(target - 1, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  const double step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step, step};
}

// Decimals that show a tick step exactly (2.5 needs one, 0.25 two, 500 none).
inline int tick_decimals(double step) {
  for (int d = 0; d < 8; ++d) {
    const double scaled = step * std::pow(10.0, d);
    if (std::abs(scaled - std::round(scaled)) < 1e-6 * scaled) return d;
  }
  return 8;
}

inline std::string xml_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default: o += c;
    }
  }
  return o;
}

// Finite points only; more than `max_points` are averaged in equal-count buckets, which keeps the
// trend and drops the step-to-step noise a plot this size cannot show anyway.
inline std::vector<std::pair<double, double>> plot_points(std::span<const std::pair<double, double>> in,
                                                          std::size_t max_points) {
  std::vector<std::pair<double, double>> pts;
  pts.reserve(in.size());
  for (const auto& p : in)
    if (std::isfinite(p.first) && std::isfinite(p.second)) pts.push_back(p);
  if (pts.size() <= max_points) return pts;
  std::vector<std::pair<double, double>> out;
  out.reserve(max_points);
  const std::size_t n = pts.size();
  for (std::size_t b = 0; b < max_points; ++b) {
    const std::size_t i0 = b * n / max_points, i1 = (b + 1) * n / max_points;
    double sx = 0, sy = 0;
    for (std::size_t i = i0; i < i1; ++i) {
      sx += pts[i].first;
      sy += pts[i].second;
    }
    const double k = double(i1 - i0);
    out.emplace_back(sx / k, sy / k);
  }
  return out;
}

}  // namespace detail

// An 800x500 SVG of the loss against the step: train as a thin line (at most 2000 points, bucket
// averages beyond that), validation as a thicker line with markers, nice-valued ticks, a legend and
// the title. Non-finite points are skipped; no finite point at all gives a "no data" plot.
inline void write_loss_plot_svg(const std::filesystem::path& out, std::span<const std::pair<double, double>> train,
                                std::span<const std::pair<double, double>> val, std::string_view title) {
  constexpr double W = 800, H = 500, left = 75, right = 20, top = 45, bottom = 60;
  constexpr double pw = W - left - right, ph = H - top - bottom;
  constexpr std::size_t max_train_points = 2000;
  const char* train_color = "#1f77b4";
  const char* val_color = "#d62728";

  const auto tr = detail::plot_points(train, max_train_points);
  const auto va = detail::plot_points(val, std::numeric_limits<std::size_t>::max());
  const auto f1 = [](double v) { return detail::fixed(v, 1); };

  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"500\" viewBox=\"0 0 800 500\" "
       "font-family=\"sans-serif\" font-size=\"12\">\n";
  const std::string esc_title = detail::xml_escape(title);
  s += "<title>" + esc_title + "</title>\n";
  s += "<rect width=\"800\" height=\"500\" fill=\"white\"/>\n";
  s += "<text x=\"" + f1(W / 2) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">" +
       esc_title + "</text>\n";

  if (tr.empty() && va.empty()) {
    s += "<rect x=\"" + f1(left) + "\" y=\"" + f1(top) + "\" width=\"" + f1(pw) + "\" height=\"" + f1(ph) +
         "\" fill=\"none\" stroke=\"#888\"/>\n";
    s += "<text x=\"" + f1(left + pw / 2) + "\" y=\"" + f1(top + ph / 2) +
         "\" text-anchor=\"middle\" font-size=\"16\" fill=\"#888\">no data</text>\n";
    s += "</svg>\n";
    write_file_atomic(out, s);
    return;
  }

  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto* series : {&tr, &va})
    for (const auto& [x, y] : *series) {
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  // Steps start where the data starts; the loss gets 5% headroom so the line does not sit on the frame.
  const double ypad = 0.05 * (ymax - ymin);
  const auto xt = detail::nice_ticks(xmin, xmax);
  const auto yt = detail::nice_ticks(ymin - ypad, ymax + ypad);
  const auto px = [&](double x) { return left + (x - xt.lo) / (xt.hi - xt.lo) * pw; };
  const auto py = [&](double y) { return top + ph - (y - yt.lo) / (yt.hi - yt.lo) * ph; };

  // Grid and tick labels. Ticks are counted, not accumulated, so rounding cannot drop the last one.
  const int xdec = detail::tick_decimals(xt.step), ydec = detail::tick_decimals(yt.step);
  const long nx = std::lround((xt.hi - xt.lo) / xt.step), ny = std::lround((yt.hi - yt.lo) / yt.step);
  for (long i = 0; i <= ny; ++i) {
    const double v = yt.lo + double(i) * yt.step, y = py(v);
    s += "<line x1=\"" + f1(left) + "\" y1=\"" + f1(y) + "\" x2=\"" + f1(left + pw) + "\" y2=\"" + f1(y) +
         "\" stroke=\"#e5e5e5\"/>\n";
    s += "<text class=\"ytick\" x=\"" + f1(left - 8) + "\" y=\"" + f1(y + 4) + "\" text-anchor=\"end\">" +
         detail::fixed(v, ydec) + "</text>\n";
  }
  for (long i = 0; i <= nx; ++i) {
    const double v = xt.lo + double(i) * xt.step, x = px(v);
    s += "<line x1=\"" + f1(x) + "\" y1=\"" + f1(top) + "\" x2=\"" + f1(x) + "\" y2=\"" + f1(top + ph) +
         "\" stroke=\"#e5e5e5\"/>\n";
    s += "<text class=\"xtick\" x=\"" + f1(x) + "\" y=\"" + f1(top + ph + 18) + "\" text-anchor=\"middle\">" +
         detail::fixed(v, xdec) + "</text>\n";
  }
  s += "<rect x=\"" + f1(left) + "\" y=\"" + f1(top) + "\" width=\"" + f1(pw) + "\" height=\"" + f1(ph) +
       "\" fill=\"none\" stroke=\"#333\"/>\n";
  s += "<text x=\"" + f1(left + pw / 2) + "\" y=\"" + f1(H - 15) +
       "\" text-anchor=\"middle\" font-size=\"13\">step</text>\n";
  s += "<text x=\"18\" y=\"" + f1(top + ph / 2) +
       "\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 " + f1(top + ph / 2) +
       ")\">loss (nats/token)</text>\n";

  const auto polyline = [&](const std::vector<std::pair<double, double>>& pts, const char* color, double width,
                            const char* cls) {
    s += "<polyline class=\"";
    s += cls;
    s += "\" fill=\"none\" stroke=\"";
    s += color;
    s += "\" stroke-width=\"" + detail::fixed(width, 1) + "\" stroke-linejoin=\"round\" points=\"";
    for (const auto& [x, y] : pts) s += detail::fixed(px(x), 2) + "," + detail::fixed(py(y), 2) + " ";
    s += "\"/>\n";
  };
  if (!tr.empty()) polyline(tr, train_color, 1.0, "train");
  if (!va.empty()) {
    polyline(va, val_color, 2.5, "val");
    for (const auto& [x, y] : va)
      s += "<circle cx=\"" + detail::fixed(px(x), 2) + "\" cy=\"" + detail::fixed(py(y), 2) + "\" r=\"3.5\" fill=\"" +
           val_color + "\"/>\n";
  }

  // Legend in the top-right corner of the plot, where a falling loss curve leaves room.
  const double lx = left + pw - 130, ly = top + 10;
  const int entries = int(!tr.empty()) + int(!va.empty());
  s += "<rect x=\"" + f1(lx) + "\" y=\"" + f1(ly) + "\" width=\"120\" height=\"" + f1(10 + 20.0 * entries) +
       "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n";
  double ey = ly + 17;
  if (!tr.empty()) {
    s += "<line x1=\"" + f1(lx + 8) + "\" y1=\"" + f1(ey - 4) + "\" x2=\"" + f1(lx + 38) + "\" y2=\"" + f1(ey - 4) +
         "\" stroke=\"" + train_color + "\" stroke-width=\"1.5\"/>\n";
    s += "<text x=\"" + f1(lx + 46) + "\" y=\"" + f1(ey) + "\">train</text>\n";
    ey += 20;
  }
  if (!va.empty()) {
    s += "<line x1=\"" + f1(lx + 8) + "\" y1=\"" + f1(ey - 4) + "\" x2=\"" + f1(lx + 38) + "\" y2=\"" + f1(ey - 4) +
         "\" stroke=\"" + val_color + "\" stroke-width=\"2.5\"/>\n";
    s += "<circle cx=\"" + f1(lx + 23) + "\" cy=\"" + f1(ey - 4) + "\" r=\"3.5\" fill=\"" + val_color + "\"/>\n";
    s += "<text x=\"" + f1(lx + 46) + "\" y=\"" + f1(ey) + "\">validation</text>\n";
  }
  s += "</svg>\n";
  write_file_atomic(out, s);
}

}  // namespace tfm::train
