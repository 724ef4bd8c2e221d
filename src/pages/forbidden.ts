// The page for a signed-in user whom ACCESS_RULES keep out of a path: says who they are signed in
// as (the usual cause: the wrong account) and offers the way back and the way out.
import { messagePage, type Brand } from './layout.js'

export function forbiddenPage (brand: Brand, username: string): string {
  return messagePage({
    ...brand,
    title: 'Not allowed',
    message: `You are signed in as ${username}, and this account may not open this page. To use another account, sign out first. If you need this page, ask your administrator.`,
    link: { href: '/logout', text: 'Sign out' }
  })
}
