#!/usr/bin/perl
# Verifies the DKIM signatures of the message on standard input with Mail::DKIM (Debian's
# libmail-dkim-perl), asking only the test world's name server: `dkim_verify.pl IP PORT`.
# Prints one line per signature: "RESULT d=DOMAIN s=SELECTOR a=ALGORITHM".
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;

my ($ip, $port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => [$ip], port => $port, recurse => 0, tcp_timeout => 5, udp_timeout => 5));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) {
    s/\r?\n\z//;
    $dkim->PRINT("$_\015\012");
}
$dkim->CLOSE();
foreach my $sig ($dkim->signatures) {
    printf "%s d=%s s=%s a=%s\n", $sig->result, $sig->domain, $sig->selector, $sig->algorithm;
    print STDERR $sig->result_detail, "\n";  # why, for a test that wants to know
}
