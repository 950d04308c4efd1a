//! Links the kernel with its platform's linker script.

fn main() {
    stratus_kernel_link::link_kernel();
}
