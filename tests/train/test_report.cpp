#define TFM_TEST_MODULE train_report
#include "support/test_main.hpp"
#include "support/temp_files.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tfm/core/error.hpp"
#include "tfm/train/report.hpp"

namespace fs = std::filesystem;
using namespace tfm;
using namespace tfm::train;

namespace {

constexpr double qnan = std::numeric_limits<double>::quiet_NaN();

using tfm::test::temp_dir;

// A FILE* backed by memory (open_memstream): what progress writes, readable after flush.
struct mem_file {
  char* buf = nullptr;
  std::size_t size = 0;
  std::FILE* f = open_memstream(&buf, &size);
  ~mem_file() {
    std::fclose(f);
    std::free(buf);
  }
  std::string text() {
    std::fflush(f);
    return std::string(buf, size);
  }
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

step_metrics sm(std::int64_t step, std::int64_t total, double loss = 2.3456, double elapsed = 10) {
  step_metrics m;
  m.step = step;
  m.total_steps = total;
  m.loss = loss;
  m.lr = 1e-3;
  m.grad_norm = 0.5;
  m.tokens_per_s = 1234;
  m.elapsed_s = elapsed;
  return m;
}

template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const tfm::error& e) {
    return e.what();
  }
  BOOST_FAIL("expected tfm::error");
  return {};
}

// The numbers inside <text class="CLS" ...>v</text>.
std::vector<double> tick_values(const std::string& svg, const std::string& cls) {
  std::vector<double> v;
  const std::regex re("<text class=\"" + cls + "\"[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    v.push_back(std::stod((*it)[1].str()));
  return v;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(eta)

BOOST_AUTO_TEST_CASE(formats_hours_minutes_seconds) {
  BOOST_TEST(progress::format_eta(0) == "0:00:00");
  BOOST_TEST(progress::format_eta(83) == "0:01:23");
  BOOST_TEST(progress::format_eta(59.6) == "0:01:00");
  BOOST_TEST(progress::format_eta(3600) == "1:00:00");
  BOOST_TEST(progress::format_eta(3 * 3600 + 25 * 60 + 7) == "3:25:07");
  BOOST_TEST(progress::format_eta(100 * 3600 + 1) == "100:00:01");
}

BOOST_AUTO_TEST_CASE(unknown_is_marked) {
  BOOST_TEST(progress::format_eta(qnan) == "?:??:??");
  BOOST_TEST(progress::format_eta(-1) == "?:??:??");
  BOOST_TEST(progress::format_eta(std::numeric_limits<double>::infinity()) == "?:??:??");
  BOOST_TEST(!progress::format_eta(1e300).empty());  // clamped, no overflow
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bar)

BOOST_AUTO_TEST_CASE(render_bar_content) {
  // 120 of 2000 steps in 10 s: 1880 left at 1/12 s each = 156.67 s.
  const std::string s = render_bar(sm(120, 2000), 20);
  BOOST_TEST_MESSAGE(s);
  BOOST_TEST(s.rfind("[#.......", 0) == 0);  // 6% of 20 cells: one
  BOOST_TEST(s.find("] 120/2000") != std::string::npos);
  BOOST_TEST(s.find("loss 2.3456") != std::string::npos);
  BOOST_TEST(s.find("lr 1.00e-03") != std::string::npos);
  BOOST_TEST(s.find("1234 tok/s") != std::string::npos);
  BOOST_TEST(s.find("eta 0:02:37") != std::string::npos);
  BOOST_TEST(s.find("skipped") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(render_bar_fill_and_edges) {
  BOOST_TEST(render_bar(sm(5, 10), 10).rfind("[#####.....]", 0) == 0);
  BOOST_TEST(render_bar(sm(10, 10), 10).rfind("[##########]", 0) == 0);
  BOOST_TEST(render_bar(sm(10, 10), 10).find("eta 0:00:00") != std::string::npos);
  BOOST_TEST(render_bar(sm(0, 10), 4).rfind("[....]", 0) == 0);
  BOOST_TEST(render_bar(sm(0, 10), 4).find("eta ?:??:??") != std::string::npos);
  BOOST_TEST(render_bar(sm(3, 0), 4).rfind("[....]", 0) == 0);   // unknown total
  BOOST_TEST(render_bar(sm(20, 10), 4).rfind("[####]", 0) == 0);  // overshoot clamps
  auto m = sm(5, 10);
  m.skipped = 3;
  BOOST_TEST(render_bar(m, 10).find("skipped 3") != std::string::npos);
  BOOST_TEST(render_bar(sm(5, 10, 1e200), 10).size() > 200);  // a diverged loss is printed whole
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(progress_output)

BOOST_AUTO_TEST_CASE(plain_lines_every_step) {
  mem_file mf;
  {
    progress p(mf.f, false, true);
    BOOST_TEST(!p.is_tty());
    for (int s = 1; s <= 3; ++s) p.update(sm(s, 3));
    p.finish();
  }
  const auto lines = lines_of(mf.text());
  BOOST_TEST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(lines[0].rfind("step 1/3 | loss 2.3456 | lr 1.00e-03 | 1234 tok/s | eta ", 0) == 0);
  BOOST_TEST(lines[2].rfind("step 3/3 |", 0) == 0);
  BOOST_TEST(mf.text().find('\r') == std::string::npos);
  BOOST_TEST(mf.text().find('\x1b') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(plain_every_n_steps_and_final) {
  mem_file mf;
  progress p(mf.f, false, true, 10);
  for (int s = 1; s <= 35; ++s) p.update(sm(s, 35));
  const auto lines = lines_of(mf.text());
  BOOST_TEST_REQUIRE(lines.size() == 4u);  // 10, 20, 30 and the final 35
  BOOST_TEST(lines[0].rfind("step 10/35 ", 0) == 0);
  BOOST_TEST(lines[2].rfind("step 30/35 ", 0) == 0);
  BOOST_TEST(lines[3].rfind("step 35/35 ", 0) == 0);
  p.finish();
  BOOST_TEST(lines_of(mf.text()).size() == 4u);  // the final step was shown already
}

BOOST_AUTO_TEST_CASE(finish_shows_a_hidden_last_step) {
  mem_file mf;
  progress p(mf.f, false, true, 10);
  for (int s = 1; s <= 13; ++s) p.update(sm(s, 100));  // stopped early
  p.finish();
  const auto lines = lines_of(mf.text());
  BOOST_TEST_REQUIRE(lines.size() == 2u);
  BOOST_TEST(lines[1].rfind("step 13/100 ", 0) == 0);
}

BOOST_AUTO_TEST_CASE(plain_message) {
  mem_file mf;
  progress p(mf.f, false, true);
  p.update(sm(1, 2));
  p.message("eval loss 2.0");
  p.update(sm(2, 2));
  const auto lines = lines_of(mf.text());
  BOOST_TEST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(lines[1] == "eval loss 2.0");
}

BOOST_AUTO_TEST_CASE(not_a_terminal_is_plain) {
  mem_file mf;
  progress p(mf.f);
  BOOST_TEST(!p.is_tty());
  progress forced(mf.f, true);
  BOOST_TEST(forced.is_tty());
  progress both(mf.f, true, true);  // plain wins
  BOOST_TEST(!both.is_tty());
}

BOOST_AUTO_TEST_CASE(bad_arguments) {
  BOOST_CHECK_THROW(progress(nullptr), tfm::error);
  mem_file mf;
  BOOST_CHECK_THROW(progress(mf.f, false, true, 0), tfm::error);
}

BOOST_AUTO_TEST_CASE(tty_redraws_in_place_rate_limited) {
  mem_file mf;
  const auto t0 = std::chrono::steady_clock::now();
  {
    progress p(mf.f, true);
    for (int s = 1; s <= 1000; ++s) p.update(sm(s, 1000));
    p.finish();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string out = mf.text();
  const std::size_t draws = count(out, "\r");
  BOOST_TEST_MESSAGE("draws: " << draws << " in " << secs << " s");
  BOOST_TEST(draws >= 2u);  // the first and the final step
  BOOST_TEST(double(draws) <= secs / progress::min_redraw_s + 2);
  BOOST_TEST(count(out, "\x1b[K") == draws);
  BOOST_TEST(count(out, "\n") == 1u);  // only finish() ends the line
  BOOST_TEST(out.back() == '\n');
  // The last redraw is the final step.
  const std::string last = out.substr(out.rfind('\r'));
  BOOST_TEST(last.find("[##############################] 1000/1000") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(tty_message_keeps_the_bar) {
  mem_file mf;
  progress p(mf.f, true);
  p.update(sm(1, 10));
  p.message("checkpoint saved");
  const std::string out = mf.text();
  // Clear the bar, the message on its own line, then the bar again.
  const auto m = out.find("\r\x1b[Kcheckpoint saved\n");
  BOOST_TEST_REQUIRE(m != std::string::npos);
  BOOST_TEST(out.find("1/10", m) != std::string::npos);
  p.finish();
  BOOST_TEST(mf.text().back() == '\n');
}

BOOST_AUTO_TEST_CASE(tty_finish_draws_a_rate_limited_step) {
  mem_file mf;
  progress p(mf.f, true);
  p.update(sm(1, 100));
  p.update(sm(2, 100));  // within 0.1 s of the first: not drawn
  p.finish();
  const std::string out = mf.text();
  BOOST_TEST(out.substr(out.rfind('\r')).find(" 2/100 ") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(round_trip_with_nan_as_null) {
  temp_dir td;
  const auto path = td / "metrics.jsonl";
  {
    metrics_log log(path);
    auto a = sm(1, 10, 3.5);
    a.skipped = 0;
    log.write(a);
    auto b = sm(2, 10, qnan);
    b.grad_norm = std::numeric_limits<double>::infinity();
    b.skipped = 1;
    log.write(b);
    log.write(eval_metrics{.step = 2, .loss = 3.25, .perplexity = std::exp(3.25)});
    log.write(eval_metrics{.step = 4, .loss = 3.0, .perplexity = std::exp(3.0), .bits_per_byte = 1.125});
  }
  const std::string text = read_text(path);
  const auto lines = lines_of(text);
  BOOST_TEST_REQUIRE(lines.size() == 4u);
  BOOST_TEST(lines[0].rfind("{\"type\":\"train\",\"step\":1,\"loss\":3.5,\"lr\":0.001,", 0) == 0);
  BOOST_TEST(lines[1].find("\"loss\":null") != std::string::npos);
  BOOST_TEST(lines[1].find("\"grad_norm\":null") != std::string::npos);
  BOOST_TEST(lines[2].find("\"bits_per_byte\":null") != std::string::npos);
  BOOST_TEST(text.find("NaN") == std::string::npos);
  BOOST_TEST(text.find("nan") == std::string::npos);

  const auto h = metrics_log::read(path);
  BOOST_TEST_REQUIRE(h.train.size() == 2u);
  BOOST_TEST_REQUIRE(h.eval.size() == 2u);
  BOOST_TEST(h.train[0].step == 1);
  BOOST_TEST(h.train[0].loss == 3.5);
  BOOST_TEST(h.train[0].lr == 1e-3);
  BOOST_TEST(h.train[0].grad_norm == 0.5);
  BOOST_TEST(h.train[0].tokens_per_s == 1234);
  BOOST_TEST(h.train[0].elapsed_s == 10);
  BOOST_TEST(std::isnan(h.train[1].loss));
  BOOST_TEST(std::isnan(h.train[1].grad_norm));
  BOOST_TEST(h.train[1].skipped == 1);
  BOOST_TEST(h.eval[0].step == 2);
  BOOST_TEST(h.eval[0].perplexity == std::exp(3.25));
  BOOST_TEST(std::isnan(h.eval[0].bits_per_byte));
  BOOST_TEST(h.eval[1].bits_per_byte == 1.125);
}

BOOST_AUTO_TEST_CASE(append_continues_a_resumed_log) {
  temp_dir td;
  const auto path = td / "metrics.jsonl";
  {
    metrics_log log(path);
    log.write(sm(1, 4));
    log.write(sm(2, 4));
  }
  {
    metrics_log log(path);  // the resumed run
    log.write(sm(3, 4));
    log.write(eval_metrics{.step = 4, .loss = 1, .perplexity = std::exp(1.0)});
  }
  const auto h = metrics_log::read(path);
  BOOST_TEST_REQUIRE(h.train.size() == 3u);
  BOOST_TEST(h.train[0].step == 1);
  BOOST_TEST(h.train[2].step == 3);
  BOOST_TEST(h.eval.size() == 1u);
}

BOOST_AUTO_TEST_CASE(append_after_a_torn_line_starts_a_new_line) {
  temp_dir td;
  const auto path = td / "metrics.jsonl";
  {
    std::ofstream(path) << "{\"type\":\"train\",\"step\":1,\"loss\":2,\"lr\":0,\"grad_norm\":0,\"tokens_per_s\":0,"
                           "\"elapsed_s\":0,\"skipped\":0}\n{\"type\":\"tr";
  }
  {
    metrics_log log(path);
    log.write(sm(2, 4));
  }
  const auto lines = lines_of(read_text(path));
  BOOST_TEST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(lines[1] == "{\"type\":\"tr");
  BOOST_TEST(lines[2].rfind("{\"type\":\"train\",\"step\":2", 0) == 0);
  // The torn line is reported, with its number.
  const std::string msg = error_message([&] { metrics_log::read(path); });
  BOOST_TEST(msg.find(path.string() + ":2:") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(malformed_line_names_file_and_line) {
  temp_dir td;
  const auto path = td / "bad.jsonl";
  {
    metrics_log log(path);
    log.write(sm(1, 4));
    log.write(sm(2, 4));
  }
  { std::ofstream(path, std::ios::app) << "\nnot json\n"; }
  const std::string msg = error_message([&] { metrics_log::read(path); });
  BOOST_TEST_MESSAGE(msg);
  BOOST_TEST(msg.find(path.string()) != std::string::npos);
  BOOST_TEST(msg.find(":4:") != std::string::npos);  // the blank line 3 is skipped, still counted

  const auto path2 = td / "bad2.jsonl";
  { std::ofstream(path2) << "{\"type\":\"train\",\"step\":\"one\"}\n"; }
  const std::string msg2 = error_message([&] { metrics_log::read(path2); });
  BOOST_TEST(msg2.find(":1:") != std::string::npos);
  BOOST_TEST(msg2.find("step") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(unknown_record_types_are_skipped) {
  temp_dir td;
  const auto path = td / "m.jsonl";
  { std::ofstream(path) << "{\"type\":\"config\",\"d_model\":256}\n"; }
  const auto h = metrics_log::read(path);
  BOOST_TEST(h.train.empty());
  BOOST_TEST(h.eval.empty());
}

BOOST_AUTO_TEST_CASE(open_and_read_errors_name_the_path) {
  temp_dir td;
  const auto bad = td / "no_such_dir" / "m.jsonl";
  const std::string msg = error_message([&] { metrics_log log(bad); });
  BOOST_TEST(msg.find(bad.string()) != std::string::npos);
  BOOST_TEST(msg.find("No such file") != std::string::npos);
  BOOST_TEST(error_message([&] { metrics_log::read(bad); }).find(bad.string()) != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(svg)

using points = std::vector<std::pair<double, double>>;

BOOST_AUTO_TEST_CASE(plot_has_lines_axes_legend_and_title) {
  temp_dir td;
  const auto out = td / "loss.svg";
  points train, val;
  for (int s = 0; s <= 500; ++s) train.emplace_back(s, 10.8 * std::exp(-s / 150.0) + 2.3);
  for (int s = 0; s <= 500; s += 100) val.emplace_back(s, 10.8 * std::exp(-s / 150.0) + 2.5);
  write_loss_plot_svg(out, train, val, "run a<b & \"c\"");
  BOOST_TEST_REQUIRE(fs::exists(out));
  BOOST_TEST(!fs::exists(out.string() + ".tmp"));
  const std::string svg = read_text(out);
  BOOST_TEST((svg.rfind("<?xml", 0) == 0 || svg.rfind("<svg", 0) == 0));
  BOOST_TEST(svg.find("</svg>") != std::string::npos);
  BOOST_TEST(count(svg, "<polyline") == 2u);
  BOOST_TEST(count(svg, "<circle") == val.size() + 1);  // markers, plus the legend's
  BOOST_TEST(svg.find(">train</text>") != std::string::npos);
  BOOST_TEST(svg.find(">validation</text>") != std::string::npos);
  BOOST_TEST(svg.find(">step</text>") != std::string::npos);
  BOOST_TEST(svg.find(">loss (nats/token)</text>") != std::string::npos);
  BOOST_TEST(svg.find("run a&lt;b &amp; &quot;c&quot;") != std::string::npos);
  BOOST_TEST(svg.find("a<b") == std::string::npos);

  // The y labels enclose the data (2.3 .. 13.1), and the x labels the steps (0 .. 500).
  const auto ys = tick_values(svg, "ytick");
  const auto xs = tick_values(svg, "xtick");
  BOOST_TEST_REQUIRE(ys.size() >= 3u);
  BOOST_TEST_REQUIRE(xs.size() >= 3u);
  BOOST_TEST(*std::min_element(ys.begin(), ys.end()) <= 2.3);
  BOOST_TEST(*std::max_element(ys.begin(), ys.end()) >= 13.1);
  BOOST_TEST(*std::min_element(ys.begin(), ys.end()) >= 0.0);  // not a wildly padded axis
  BOOST_TEST(*std::max_element(ys.begin(), ys.end()) <= 16.0);
  BOOST_TEST(*std::min_element(xs.begin(), xs.end()) <= 0.0);
  BOOST_TEST(*std::max_element(xs.begin(), xs.end()) >= 500.0);
  BOOST_TEST(ys.size() <= 12u);
  // Round values: an integer multiple of the spacing.
  const double dy = ys[1] - ys[0];
  for (double y : ys) BOOST_TEST(std::abs(y / dy - std::round(y / dy)) < 1e-6);
}

BOOST_AUTO_TEST_CASE(points_map_inside_the_plot_area) {
  temp_dir td;
  const auto out = td / "p.svg";
  const points train = {{100, 4.0}, {200, 3.0}, {300, 2.5}};
  write_loss_plot_svg(out, train, {}, "t");
  const std::string svg = read_text(out);
  const std::regex re("points=\"([^\"]*)\"");
  std::smatch m;
  BOOST_TEST_REQUIRE(std::regex_search(svg, m, re));
  std::istringstream is(m[1].str());
  std::string xy;
  int n = 0;
  while (is >> xy) {
    const double x = std::stod(xy.substr(0, xy.find(','))), y = std::stod(xy.substr(xy.find(',') + 1));
    BOOST_TEST((x >= 0 && x <= 800 && y >= 0 && y <= 500));
    ++n;
  }
  BOOST_TEST(n == 3);
  BOOST_TEST(svg.find(">validation</text>") == std::string::npos);  // no empty legend entry
}

BOOST_AUTO_TEST_CASE(non_finite_points_are_skipped) {
  temp_dir td;
  const auto out = td / "nan.svg";
  const points train = {{1, 3.0}, {2, qnan}, {3, std::numeric_limits<double>::infinity()}, {qnan, 1.0}, {4, 2.0}};
  const points val = {{2, qnan}, {4, 2.5}};
  write_loss_plot_svg(out, train, val, "x");
  const std::string svg = read_text(out);
  BOOST_TEST(svg.find("nan") == std::string::npos);
  BOOST_TEST(svg.find("inf") == std::string::npos);
  BOOST_TEST(count(svg, "<circle") == 2u);
  const auto ys = tick_values(svg, "ytick");
  BOOST_TEST(*std::min_element(ys.begin(), ys.end()) <= 2.0);
  BOOST_TEST(*std::max_element(ys.begin(), ys.end()) >= 3.0);
  BOOST_TEST(*std::max_element(ys.begin(), ys.end()) < 10.0);  // the infinity did not stretch the axis
}

BOOST_AUTO_TEST_CASE(empty_input_says_no_data) {
  temp_dir td;
  const auto out = td / "empty.svg";
  write_loss_plot_svg(out, {}, {}, "empty");
  std::string svg = read_text(out);
  BOOST_TEST(svg.rfind("<?xml", 0) == 0);
  BOOST_TEST(svg.find("no data") != std::string::npos);
  BOOST_TEST(svg.find("</svg>") != std::string::npos);
  BOOST_TEST(svg.find("<polyline") == std::string::npos);

  const points only_nan = {{1, qnan}};
  write_loss_plot_svg(out, only_nan, only_nan, "empty");  // overwrites in place
  svg = read_text(out);
  BOOST_TEST(svg.find("no data") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(single_point_and_flat_lines) {
  temp_dir td;
  const auto out = td / "one.svg";
  const points one = {{7, 2.0}};
  write_loss_plot_svg(out, one, one, "one");
  std::string svg = read_text(out);
  auto ys = tick_values(svg, "ytick");
  BOOST_TEST(*std::min_element(ys.begin(), ys.end()) < 2.0);
  BOOST_TEST(*std::max_element(ys.begin(), ys.end()) > 2.0);
  BOOST_TEST(svg.find("nan") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(long_runs_are_downsampled) {
  temp_dir td;
  const auto out = td / "long.svg";
  points train;
  for (int s = 0; s < 100000; ++s) train.emplace_back(s, 5.0 + (s % 2 ? 0.1 : -0.1));
  write_loss_plot_svg(out, train, {}, "long");
  const std::string svg = read_text(out);
  // std::regex recurses per character: far too deep for an attribute this long.
  const auto p0 = svg.find("points=\"");
  BOOST_TEST_REQUIRE(p0 != std::string::npos);
  const auto p1 = svg.find('"', p0 + 8);
  const std::size_t n = count(svg.substr(p0 + 8, p1 - p0 - 8), ",");
  BOOST_TEST(n <= 2000u);
  BOOST_TEST(n >= 1000u);
  BOOST_TEST(fs::file_size(out) < 200000u);
}

BOOST_AUTO_TEST_CASE(write_error_names_the_path) {
  temp_dir td;
  const auto out = td / "missing_dir" / "loss.svg";
  const std::string msg = error_message([&] { write_loss_plot_svg(out, {}, {}, "x"); });
  BOOST_TEST(msg.find(out.string()) != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(helpers)

BOOST_AUTO_TEST_CASE(nice_ticks_enclose_the_range) {
  const struct {
    double lo, hi;
  } cases[] = {{2.3, 13.1}, {0, 2000}, {0.0012, 0.0049}, {-3, 7}, {5, 5}, {1e6, 1.3e6}, {2.31, 2.34}};
  for (const auto& c : cases) {
    const auto t = tfm::train::detail::nice_ticks(c.lo, c.hi);
    BOOST_TEST_CONTEXT(c.lo << ".." << c.hi) {
      BOOST_TEST(t.lo <= c.lo);
      BOOST_TEST(t.hi >= c.hi);
      BOOST_TEST(t.step > 0);
      const double n = (t.hi - t.lo) / t.step;
      BOOST_TEST(n >= 1.0);
      BOOST_TEST(n <= 12.0);
      BOOST_TEST(std::abs(t.lo / t.step - std::round(t.lo / t.step)) < 1e-6);
    }
  }
}

BOOST_AUTO_TEST_CASE(tick_decimals) {
  BOOST_TEST(tfm::train::detail::tick_decimals(500) == 0);
  BOOST_TEST(tfm::train::detail::tick_decimals(2.5) == 1);
  BOOST_TEST(tfm::train::detail::tick_decimals(0.25) == 2);
  BOOST_TEST(tfm::train::detail::tick_decimals(0.001) == 3);
}

BOOST_AUTO_TEST_SUITE_END()
