// siplbctl capture's pcap writer: the file and record headers as tcpdump's
// format defines them (nanosecond magic, Ethernet), checked by libpcap itself.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstdio>
#include <cstring>

#include "pcap_file.h"

using namespace siplb::cli;

TEST(PcapFile, LibpcapReadsWhatWeWrite) {
    const std::string frame = "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00payload";
    std::string file = pcap_global_header(2032);
    ASSERT_EQ(file.size(), 24u);
    file += pcap_record(1700000000ull * 1000000000ull + 123456789ull, 1500, frame);
    ASSERT_EQ(file.size(), 24u + 16 + frame.size());
    FILE* f = fmemopen(file.data(), file.size(), "rb");
    ASSERT_NE(f, nullptr);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, err);
    ASSERT_NE(p, nullptr) << err;
    EXPECT_EQ(pcap_datalink(p), DLT_EN10MB);
    EXPECT_EQ(pcap_snapshot(p), 2032);
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    ASSERT_EQ(pcap_next_ex(p, &h, &data), 1);
    EXPECT_EQ(h->ts.tv_sec, 1700000000);
    EXPECT_EQ(h->ts.tv_usec, 123456789) << "nanoseconds with PCAP_TSTAMP_PRECISION_NANO";
    EXPECT_EQ(h->caplen, frame.size());
    EXPECT_EQ(h->len, 1500u);
    EXPECT_EQ(std::memcmp(data, frame.data(), frame.size()), 0);
    EXPECT_EQ(pcap_next_ex(p, &h, &data), PCAP_ERROR_BREAK);
    pcap_close(p);
}
