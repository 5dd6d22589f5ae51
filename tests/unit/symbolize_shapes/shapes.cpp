// C++ shapes for tests/unit/test_symbolize_binutils.py: namespaces,
// overloads, class templates, function templates, an anonymous namespace,
// a virtual method, an operator and a destructor.
#define NOINLINE __attribute__((noinline))

// Declared, not included: the standard names mangle with the short
// substitutions (So, Ss) that demanglers may print expanded (c++filt's
// default, verbose) or not (nm -C).
namespace std {
template <class C> struct char_traits;
template <class C> class allocator;
template <class C, class T> class basic_ostream;
template <class C, class T, class A> class basic_string;
typedef basic_ostream<char, char_traits<char> > ostream;
typedef basic_string<char, char_traits<char>, allocator<char> > string;
}  // namespace std

NOINLINE int takes_streams(std::ostream *os, std::string *s) { return (os != 0) + (s != 0); }

namespace outer {
namespace inner {
NOINLINE int twice(int x) { return 2 * x; }
NOINLINE double twice(double x) { return 2.5 * x; }
NOINLINE long twice(long x, const char *why) { return x + (why ? why[0] : 0); }
}  // namespace inner

template <typename T>
class Accumulator {
public:
    NOINLINE T add(T v) { total_ += v; return total_; }
    NOINLINE static Accumulator *make() { static Accumulator a; return &a; }
    T total_{};
};

template <typename T, int N>
NOINLINE T scaled(T v) { return v * N; }
}  // namespace outer

namespace {
NOINLINE int anonymous_helper(int x) { return x ^ 0x5a; }
}  // namespace

struct Shape {
    virtual ~Shape() {}
    NOINLINE virtual int area() const { return 1; }
    NOINLINE int operator()(int x) const { return x + area(); }
};

static NOINLINE int file_static(int x) { return x * 13; }

int main(int argc, char **argv) {
    using namespace outer;
    int r = inner::twice(argc) + (int)inner::twice(argc * 1.0) +
            (int)inner::twice((long)argc, argv[0]);
    r += Accumulator<int>::make()->add(argc) + (int)Accumulator<double>::make()->add(1.5);
    r += scaled<int, 3>(argc) + (int)scaled<long, 7>(argc);
    Shape s;
    r += s(argc) + anonymous_helper(argc) + file_static(argc);
    r += takes_streams(0, 0);
    return r & 1;
}
