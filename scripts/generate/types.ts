/** A generated file: where it goes and what it holds. */
export interface Generated {
  path: string;
  text: string;
}
