//! Links the kernel with its platform's linker script (a static PIE in the
//! top 2 GiB, as the Limine protocol wants it).

fn main() {
    stratus_kernel_link::link_kernel();
}
