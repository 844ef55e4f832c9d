/** Device numbers as the kernel writes them ("major:minor", as in /proc/self/mountinfo). */

/** "major:minor" of a device number as Node's stat gives it (the kernel's new_encode_dev). */
export function deviceString(dev: number): string {
  const low = dev % 2 ** 32;
  const high = Math.floor(dev / 2 ** 32);
  const major = ((low >>> 8) & 0xfff) | (high & ~0xfff);
  const minor = (low & 0xff) | ((low >>> 12) & ~0xff);
  return `${major >>> 0}:${minor >>> 0}`;
}
