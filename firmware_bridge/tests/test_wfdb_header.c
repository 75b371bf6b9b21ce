/*
 * ecgsim's WFDB header parser (sim/record.c, wfdb_header_parse) on header strings. The
 * signal lines marked "wfdb-python 4.3" are what its wrsamp / wrheader / wfdb_to_mat write;
 * tests/test_sim_headers.py plays such records end to end.
 */
#include <string.h>

#include "check.h"
#include "sim.h"

static wfdb_header h;
static char err[512];

static int parse(const char *text)
{
    err[0] = '\0';
    return wfdb_header_parse(&h, text, "dir/t.hea", err, sizeof err);
}

/* Refused, with a message that holds every one of the given parts (NULL-terminated). */
static int refused_with(const char *text, const char *part1, const char *part2, const char *part3)
{
    const char *parts[3];
    unsigned k;
    parts[0] = part1;
    parts[1] = part2;
    parts[2] = part3;
    if (parse(text) == 0)
        return 0;
    for (k = 0; k < 3; ++k)
        if (parts[k] && !strstr(err, parts[k])) {
            fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err, parts[k]);
            return 0;
        }
    return 1;
}

void test_header_wfdb_python_layouts(void)
{
    /* wfdb-python 4.3 wrheader with byte_offset=[24]: the CinC .mat layout */
    CHECK(parse("f 1 300 50\nf.mat 16x1+24 1000.0(0)/mV 16 0 0 0 0 ECG\n") == 0);
    CHECK(h.n_sig == 1 && h.fs == 300 && h.n_samples == 50 && strcmp(h.name, "f") == 0);
    CHECK(strcmp(h.sig[0].file_name, "f.mat") == 0 && h.sig[0].format == 16);
    CHECK(h.sig[0].byte_offset == 24 && h.sig[0].adc_gain == 1000.0 && h.sig[0].baseline == 0);
    CHECK(h.sig[0].uv_per_unit == 1000.0 && strcmp(h.sig[0].description, "ECG") == 0);

    /* wfdb-python 4.3 wfdb_to_mat: offset 192, the baseline apart from the ADC zero */
    CHECK(parse("jm 2 500 50\njm.mat 16x1+192 200.0(-3)/mV 12 0 -50 65486 0 I\n"
                "jm.mat 16x1+192 200.0(-3)/mV 12 0 -49 0 0 II\n#Creator: wfdb2mat\n") == 0);
    CHECK(h.n_sig == 2 && h.sig[1].byte_offset == 192 && h.sig[1].baseline == -3);
    CHECK(h.sig[1].adc_gain == 200.0 && strcmp(h.sig[1].description, "II") == 0);

    /* wfdb-python 4.3 wrsamp: decimal gain, baseline 1024 while the ADC zero is 0 */
    CHECK(parse("b 2 500 50 05:05:15 08/05/2014\nb.dat 16 200.5(1024)/mV 16 0 -50 65486 0 I\n"
                "b.dat 16 200.5(1024)/mV 16 0 -49 0 0 II\n# age: 3\n") == 0);
    CHECK(h.sig[0].adc_gain == 200.5 && h.sig[0].baseline == 1024 && h.sig[0].adc_zero == 0);
    CHECK(strcmp(h.base_time, "05:05:15") == 0 && strcmp(h.base_date, "08/05/2014") == 0);

    /* wfdb-python 4.3 wrsamp with e_d_signal and samps_per_frame=1: "x1" written */
    CHECK(parse("h 1 500 50\nh.dat 16x1 1000.0(0)/mV 16 0 -50 65486 0 I\n") == 0);
    CHECK(h.sig[0].format == 16 && h.sig[0].byte_offset == 0);

    /* formats 212 and 24 as wfdb-python writes them; gain in exponent form */
    CHECK(parse("j 1 500\nj.dat 212 200.0(-3)/mV 12 0 -50 65486 0 I\n") == 0);
    CHECK(h.sig[0].format == 212 && h.sig[0].baseline == -3 && h.n_samples == -1);
    CHECK(parse("e 1 360 5\ne.dat 24 1e3(7)/mV 24 0 -50 65486 0 V3R\n") == 0);
    CHECK(h.sig[0].format == 24 && h.sig[0].adc_gain == 1000.0 && h.sig[0].baseline == 7);

    /* explicit spf 1, skew 0 and offset together, in WFDB's order; x0 means 1 in WFDB */
    CHECK(parse("r 1\nr.dat 16x1:0+512 100\n") == 0);
    CHECK(h.sig[0].byte_offset == 512 && h.sig[0].adc_gain == 100.0);
    CHECK(parse("r 1\nr.dat 16x0:0 100\n") == 0);
    /* the older form wfdb and the CinC sets write: format 16 at byte offset 24 */
    CHECK(parse("A00001 1 300 9000\nA00001.mat 16+24 1000/mV 16 0 -127 0 0 ECG\n") == 0);
    CHECK(h.sig[0].byte_offset == 24 && h.sig[0].baseline == 0);
}

void test_header_optional_fields(void)
{
    /* MIT-BIH: gain without baseline or units: baseline = ADC zero, units mV */
    CHECK(parse("100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n"
                "100.dat 212 200 11 1024 1011 20052 0 V5\n") == 0);
    CHECK(h.sig[0].adc_gain == 200.0 && h.sig[0].baseline == 1024 && h.sig[0].adc_zero == 1024);
    CHECK(h.sig[1].uv_per_unit == 1000.0 && strcmp(h.sig[1].description, "V5") == 0);

    /* nothing after the format: gain 200, baseline 0, no description */
    CHECK(parse("r 1 250 10\nr.dat 16\n") == 0);
    CHECK(h.sig[0].adc_gain == 200.0 && h.sig[0].baseline == 0 && h.sig[0].description[0] == 0);

    /* gain 0 is WFDB's default 200; the baseline in parentheses still counts */
    CHECK(parse("r 1\nr.dat 16 0(12)/mV\n") == 0);
    CHECK(h.sig[0].adc_gain == 200.0 && h.sig[0].baseline == 12);

    /* fields stop early, then the description, inner spaces kept, trailing ones not */
    CHECK(parse("r 1\nr.dat 16 100(5)/uV 16 lead II  sternal   \n") == 0);
    CHECK(strcmp(h.sig[0].description, "lead II  sternal") == 0 && h.sig[0].baseline == 5);
    CHECK(parse("r 1\nr.dat 24 1000/mV V1\n") == 0);
    CHECK(strcmp(h.sig[0].description, "V1") == 0 && h.sig[0].adc_zero == 0);
    CHECK(parse("r 1\nr.dat 16 aVF\n") == 0);
    CHECK(strcmp(h.sig[0].description, "aVF") == 0 && h.sig[0].adc_gain == 200.0);
    /* ADC zero present, baseline not: the baseline is the ADC zero */
    CHECK(parse("r 1\nr.dat 16 400/mV 12 -7\n") == 0);
    CHECK(h.sig[0].baseline == -7 && h.sig[0].description[0] == 0);

    /* the data-file name keeps its letter case; the format field alone says the layout */
    CHECK(parse("JS00001 1 500 5000\nJS00001.MAT 16+24 1000/mV 16 0 -254 21756 0 I\n") == 0);
    CHECK(strcmp(h.sig[0].file_name, "JS00001.MAT") == 0 && h.sig[0].byte_offset == 24);
    CHECK(parse("r 1\nData_File.Dat 212 200\n") == 0);
    CHECK(strcmp(h.sig[0].file_name, "Data_File.Dat") == 0);
}

void test_header_units(void)
{
    static const struct {
        const char *gain;
        double uv_per_unit;
    } cases[] = {
        {"1000/mV", 1000.0}, {"1000/mv", 1000.0}, /* PTB-XL in CinC 2021 writes "mv" */
        {"1/uV", 1.0}, {"1/\xc2\xb5V", 1.0}, {"1/\xce\xbcV", 1.0}, {"0.001/V", 1e6},
        {"1000(0)/mV", 1000.0}, {"1000", 1000.0}, {"1000(3)", 1000.0},
    };
    char text[128];
    unsigned k;
    for (k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        snprintf(text, sizeof text, "r 1\nr.dat 16 %s 16 0 0 0 0 II\n", cases[k].gain);
        CHECK(parse(text) == 0 && h.sig[0].uv_per_unit == cases[k].uv_per_unit);
    }
}

void test_header_lines_comments_crlf(void)
{
    /* CRLF, comments before, between and after, blank lines, spaces, a byte-order mark */
    CHECK(parse("\xef\xbb\xbf# written on Windows\r\n\r\n  100 2 360 650000\r\n# between\r\n"
                "100.dat 212 200 11 1024 995 -22131 0 MLII\r\n\r\n\t\r\n"
                "100.dat\t212 200 11 1024 1011 20052 0 V5 \r\n# 69 M 1085 1629 x1\r\n") == 0);
    CHECK(h.n_sig == 2 && h.n_samples == 650000 && strcmp(h.name, "100") == 0);
    CHECK(strcmp(h.sig[0].description, "MLII") == 0 && strcmp(h.sig[1].description, "V5") == 0);
    CHECK(h.sig[1].format == 212 && h.sig[1].baseline == 1024);
    /* the last line without a newline */
    CHECK(parse("r 1 500 10\nr.dat 16 1000/mV 16 0 0 0 0 I") == 0);
    CHECK(strcmp(h.sig[0].description, "I") == 0);
}

void test_header_record_line(void)
{
    /* CinC 2017: ISO date then time, trailing space, CRLF */
    CHECK(parse("A00001 1 300 9000 2014-05-08 05:05:15 \r\nA00001.mat 16+24 1000/mV 16 0 -127 0 "
                "0 ECG \r\n") == 0);
    CHECK(strcmp(h.base_date, "2014-05-08") == 0 && strcmp(h.base_time, "05:05:15") == 0);
    CHECK(h.fs == 300 && h.n_samples == 9000);
    /* Chapman and CinC 2021: dd-Mon-yyyy then time */
    CHECK(parse("JS00006 12 500 5000 23-Mar-2021 20:21:11\n"
                "JS00006.mat 16+24 1000/mV 16 0 -29 25846 0 I\n"
                "JS00006.mat 16+24 1000/mV 16 0 -68 4591 0 II\n"
                "JS00006.mat 16+24 1000/mV 16 0 -39 -21224 0 III\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 aVR\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 aVL\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 aVF\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 V1\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 V2\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 V3\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 V4\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 V5\n"
                "JS00006.mat 16+24 1000/mV 16 0 49 -9776 0 V6\n") == 0);
    CHECK(h.n_sig == 12 && strcmp(h.base_date, "23-Mar-2021") == 0);
    CHECK(strcmp(h.base_time, "20:21:11") == 0 && strcmp(h.sig[11].description, "V6") == 0);
    /* standard hh:mm:ss dd/mm/yyyy, fractional seconds */
    CHECK(parse("b 1 500 50 05:05:15.250000 08/05/2014\nb.dat 16\n") == 0);
    CHECK(strcmp(h.base_time, "05:05:15.250000") == 0 && strcmp(h.base_date, "08/05/2014") == 0);
    /* counter frequency and base counter; a decimal rate */
    CHECK(parse("r 1 360/720(3) 100\nr.dat 16\n") == 0 && h.fs == 360.0);
    CHECK(parse("r 1 128.5 100\nr.dat 16\n") == 0 && h.fs == 128.5);
    /* no rate: WFDB's 250 Hz; 0 samples: unknown */
    CHECK(parse("r 1\nr.dat 16\n") == 0 && h.fs == 250.0 && h.n_samples == -1);
    CHECK(parse("r 1 500 0\nr.dat 16\n") == 0 && h.n_samples == -1);
}

void test_header_refusals_name_the_field(void)
{
    const char *sig2 = "r 2 500 10\nr.dat 16 1000(0)/mV 16 0 0 0 0 I\nr.dat %s 0 II\n";
    char text[256];
#define SIG2(fmt_field) (snprintf(text, sizeof text, sig2, fmt_field), text)
    /* the record (the header path), the signal and the field are named */
    CHECK(refused_with(SIG2("16x2 1000(0)/mV 16 0 0 0"), "dir/t.hea: record r, signal 1 (II)",
                       "format field '16x2'", "2 samples per frame are not supported"));
    CHECK(refused_with(SIG2("16x2+24 1000(0)/mV 16 0 0 0"), "signal 1 (II)", "'16x2+24'",
                       "samples per frame"));
    CHECK(refused_with(SIG2("16:3 1000(0)/mV 16 0 0 0"), "signal 1 (II)", "format field '16:3'",
                       "skew 3 is not supported"));
    CHECK(refused_with(SIG2("16x1:1+24 1000(0)/mV 16 0 0 0"), "signal 1 (II)", "skew 1", NULL));
    CHECK(refused_with(SIG2("80 1000(0)/mV 8 0 0 0"), "signal 1 (II)", "WFDB format 80", NULL));
    CHECK(refused_with(SIG2("16+x 1000(0)/mV 16 0 0 0"), "format field '16+x'",
                       "format[xSPF][:skew][+offset]", NULL));
    CHECK(refused_with(SIG2("16+24x1 1000(0)/mV 16 0 0 0"), "format field '16+24x1'", NULL, NULL));
    CHECK(refused_with(SIG2("16 1000(0)/mmHg 16 0 0 0"), "signal 1 (II)", "units 'mmHg'",
                       "not a voltage"));
    CHECK(refused_with(SIG2("16 1000(x)/mV 16 0 0 0"), "gain field '1000(x)/mV'", NULL, NULL));
    CHECK(refused_with(SIG2("16 1000(0/mV 16 0 0 0"), "gain field '1000(0/mV'", NULL, NULL));
    CHECK(refused_with(SIG2("16 1e3x 16 0 0 0"), "gain field '1e3x'", NULL, NULL));
    CHECK(refused_with(SIG2("16 -200 16 0 0 0"), "negative gain", NULL, NULL));
#undef SIG2
    CHECK(refused_with("r 1\n~ 16 200 16 0 0 0 0 I\n", "signal 0 (I)", "no signal file", NULL));
    CHECK(refused_with("r/2 1 360 100\n", "multi-segment", NULL, NULL));
    CHECK(refused_with("r 17 360\n", "17 signals", NULL, NULL));
    CHECK(refused_with("r 0 360\n", "0 signals", NULL, NULL));
    CHECK(refused_with("r 2 360 100\nr.dat 16\n# the second is missing\n",
                       "signal 1: missing signal line", NULL, NULL));
    CHECK(refused_with("r 1 0 100\nr.dat 16\n", "sampling frequency 0", NULL, NULL));
    CHECK(refused_with("r 1 fast 100\nr.dat 16\n", "sampling frequency field 'fast'", NULL, NULL));
    CHECK(refused_with("r 1 360 many\nr.dat 16\n", "number of samples 'many'", NULL, NULL));
    CHECK(refused_with("r 1 360 10 noon\nr.dat 16\n", "'noon'", "base time or date", NULL));
    CHECK(refused_with("# only a comment\n\n", "no record line", NULL, NULL));
}
