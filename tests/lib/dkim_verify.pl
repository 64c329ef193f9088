#!/usr/bin/perl
# Independent DKIM verification (Perl's Mail::DKIM, not the dkimpy that signs).
# Usage: dkim_verify.pl KEYS_FILE MESSAGE...
#   KEYS_FILE: lines "<selector>._domainkey.<domain> <TXT record value>", standing in for DNS.
# Prints "<file> <result> <details>" per message; exits 0 only if every message passes.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::PublicKey;

my ($keys_file, @messages) = @ARGV;
die "usage: $0 KEYS_FILE MESSAGE...\n" unless $keys_file && @messages;
my %keys;
open my $kf, '<', $keys_file or die "$keys_file: $!\n";
while (<$kf>) {
    chomp;
    my ($name, $value) = split / /, $_, 2;
    $keys{lc $name} = $value;
}
close $kf;

{
    no warnings 'redefine';
    *Mail::DKIM::PublicKey::fetch_async = sub {
        my ($class, %prms) = @_;
        my $on_success = ($prms{Callbacks} || {})->{Success} || sub { $_[0] };
        my $txt = $keys{ lc "$prms{Selector}._domainkey.$prms{Domain}" };
        # like a DNS query: the answer is handed over when the caller waits for it
        return sub {
            return $on_success->() unless defined $txt;
            my $key = $class->parse($txt);
            $key->{Selector} = $prms{Selector};
            $key->{Domain}   = $prms{Domain};
            $key->check;
            return $on_success->($key);
        };
    };
}

my $failed = 0;
for my $file (@messages) {
    my $dkim = Mail::DKIM::Verifier->new();
    open my $fh, '<', $file or die "$file: $!\n";
    binmode $fh;
    while (my $line = <$fh>) {
        $line =~ s/\r?\n\z/\015\012/;
        $dkim->PRINT($line);
    }
    close $fh;
    $dkim->CLOSE();
    my $result = $dkim->result;
    print "$file $result ", ($dkim->result_detail // ''), "\n";
    $failed++ unless $result eq 'pass';
}
exit($failed ? 1 : 0);
